"""Content-addressed blob stores, chosen by URL scheme.

The local store packs blobs into append-only shard files instead of creating one file per blob:
file creation is the bottleneck of ingest (see the core-system issue), and packs make training
reads sequential. Each process appends to a pack of its own (named by a random id, locked with
``flock`` while it is open for appends), so server and worker processes never interleave writes.
Every record is self-describing::

    b"MTB2" | sha256 (32 bytes) | length (8 bytes, big endian) | crc32 of the 44 bytes before (4)
    | data

The crc32 lets a scan trust a header (and so its length) without reading the data; the sha256
is the checksum of the data, verified on every read. Packs written before this format hold
``b"MTB1" | sha256 | length | data`` records; they are still read.

Failure rules (docs/reliability.md, "Durability"):

* A failed or short write (ENOSPC, EIO, an exception half-way) truncates the pack back to the
  end of the last complete record, or, when even that fails, abandons the pack (the next put
  opens a new one). The write position never moves past bytes that are not a whole record and
  the key is not indexed; ``put`` raises the ``OSError`` with its errno.
* A scan indexes a record only when its header checksum is valid. A damaged region (bit flips,
  a torn write left by a killed process) is skipped: the scan resynchronises on the next magic
  whose header checksum is valid (a legacy ``MTB1`` record only when its data matches its
  sha256) and indexes the good records after it. A header that is valid but whose data is not
  all there yet (another process is still writing) stops the scan until the next refresh.
* ``sync`` fsyncs the active pack and, after a pack was created, the ``packs`` folder.

Packs are created 0600 and folders 0700 (owner only) unless another mode is given.
Compaction (dropping records nobody refers to) lives in :mod:`mobiletrain.store.compaction`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from mobiletrain.core.ports import BlobDamaged, BlobStore
from mobiletrain.store.packs import (
    _PACK_LIMIT,
    _PACK_MAX_AGE_S,
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    DOOMED_SUFFIX,
    HEADER_SIZE,
    MAGIC_V1,
    MAGIC_V2,
    PACK_SUFFIX,
    PackRecord,
    ScanResult,
    default_modes,
    encode_header,
    fsync_dir,
    make_dir,
    scan_pack,
)

# The pack format lives in store/packs.py; its names stay importable from here.
__all__ = [
    "DEFAULT_DIR_MODE",
    "DEFAULT_FILE_MODE",
    "DOOMED_SUFFIX",
    "HEADER_SIZE",
    "MAGIC_V1",
    "MAGIC_V2",
    "PACK_SUFFIX",
    "BlobDamaged",
    "LocalPackBlobStore",
    "PackRecord",
    "ScanResult",
    "default_modes",
    "encode_header",
    "fsync_dir",
    "make_dir",
    "open_blob_store",
    "scan_pack",
]

# The write call, a module attribute so that fault-injection tests can replace it with one that
# really writes part of the bytes and then fails.
_write = os.write


@dataclass
class _Writer:
    name: str
    fd: int
    size: int = 0
    opened: float = field(default_factory=time.monotonic)
    unsynced: list[str] = field(default_factory=list)


class LocalPackBlobStore(BlobStore):
    """Blobs packed in append-only files under ``root/packs``; safe across processes.

    API contract (relied upon by core services, fsck and compaction):

    * :meth:`put` returns the sha256 hex key once the record is written; on failure it raises
      ``OSError`` (``errno`` preserved, e.g. ``ENOSPC``/``EIO``) and the store stays consistent:
      the next put and the next scan work, and the key is not stored.
    * :meth:`sync` makes everything put so far durable (fsync of the pack, and of the folder when
      a pack was created); an ``OSError`` there means the puts since the last sync are not
      durable — they are forgotten and a later put writes them again.
    * :meth:`get` returns the exact bytes, raises ``KeyError`` when the blob is absent and
      :class:`~mobiletrain.core.ports.BlobDamaged` (an ``OSError``) when it is present but its
      bytes do not match their sha256 (never wrong bytes). Another good copy, if any, is used.
    """

    def __init__(
        self,
        root: str | Path,
        pack_limit: int = _PACK_LIMIT,
        *,
        file_mode: int | None = None,
        dir_mode: int | None = None,
        pack_max_age_s: float = _PACK_MAX_AGE_S,
    ) -> None:
        self.root = Path(root)
        self.packs = self.root / "packs"
        default_file, default_dir = default_modes()
        self.file_mode = default_file if file_mode is None else file_mode
        self.dir_mode = default_dir if dir_mode is None else dir_mode
        dir_mode = self.dir_mode
        make_dir(self.packs, dir_mode)
        self._pack_limit = pack_limit
        self._pack_max_age = pack_max_age_s
        self._lock = threading.RLock()
        # Group commit of fsyncs (see sync): one caller fsyncs at a time, outside ``_lock``.
        self._sync_lock = threading.Lock()
        self._put_gen = 0  # records appended by this instance so far
        self._synced_gen = 0  # every record up to this one is durable
        # sha256 hex -> (pack name, data offset, length)
        self._index: dict[str, tuple[str, int, int]] = {}
        # pack name -> offset up to which it has been scanned
        self._scanned: dict[str, int] = {}
        # pack name -> damaged byte ranges found by scans
        self.damaged: dict[str, list[tuple[int, int]]] = {}
        self._writer: _Writer | None = None
        self._dir_dirty = False
        # Packs of other processes that hold a blob we deduplicated against since the last sync.
        self._foreign: set[str] = set()
        self._stale = False
        # key -> other locations of the same blob, seen by scans (see _forget_pack)
        self._alt: dict[str, list[tuple[str, int, int]]] = {}
        # key -> pack generation at which a search for an intact copy found none
        self._no_good_copy: dict[str, tuple[int, int]] = {}
        with self._lock:
            self._refresh()

    # -- index -------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Index records appended to any pack since the last scan (by us or other processes).

        Called with the lock held.
        """
        present = set()
        for path in sorted(self.packs.glob("*" + PACK_SUFFIX)):
            name = path.name
            present.add(name)
            pos = self._scanned.get(name, 0)
            try:
                end = path.stat().st_size
            except FileNotFoundError:
                continue
            if pos >= end:
                continue
            try:
                found = scan_pack(path, pos, end)
            except FileNotFoundError:
                continue
            for rec in found.records:
                key, loc = rec.digest.hex(), (name, rec.data_offset, rec.length)
                known = self._index.get(key)
                if known is None:
                    self._index[key] = loc
                elif known != loc:
                    # Another copy (a compacted pack, a fresh copy written during a compaction,
                    # two processes putting the same bytes): used when the indexed one vanishes.
                    self._alt.setdefault(key, []).append(loc)
            if found.damaged:
                self.damaged.setdefault(name, []).extend(found.damaged)
            self._scanned[name] = found.next_offset
        for gone in set(self._scanned) - present:
            self._forget_pack(gone)

    def _forget_pack(self, name: str) -> None:
        """Drop index entries of a pack that no longer exists (compacted away). Lock held.

        A key with another known copy points at it instead.
        """
        self._scanned.pop(name, None)
        self.damaged.pop(name, None)
        for key in [k for k, loc in self._index.items() if loc[0] == name]:
            del self._index[key]
        for key in list(self._alt):
            others = [loc for loc in self._alt[key] if loc[0] != name]
            if key not in self._index and others:
                self._index[key] = others.pop(0)
            if others:
                self._alt[key] = others
            else:
                del self._alt[key]

    def _rescan_all(self) -> None:
        """Scan every pack from the start again, filling in keys missing from the index."""
        self._scanned.clear()
        self.damaged.clear()
        self._alt.clear()
        self._stale = False
        self._refresh()

    def _locate(self, sha256: str) -> tuple[str, int, int]:
        loc = self._index.get(sha256)
        if loc is None:
            with self._lock:
                self._refresh()
                loc = self._index.get(sha256)
                if loc is None and self._stale:
                    self._rescan_all()
                    loc = self._index.get(sha256)
        if loc is None:
            raise KeyError(sha256)
        return loc

    def _open_record(self, sha256: str) -> tuple[BinaryIO, int, int]:
        """An open pack positioned at the blob's data, its offset and length.

        A pack that vanished under a stale index entry (compacted by another process) makes the
        index forget it and look again.
        """
        for _ in range(3):
            name, offset, length = self._locate(sha256)
            try:
                fh = open(self.packs / name, "rb")  # noqa: SIM115 - returned to the caller
            except FileNotFoundError:
                with self._lock:
                    self._forget_pack(name)
                    self._refresh()
                    # Not found anywhere known: the next miss rescans every pack once (a safety
                    # net; copies are normally known from the scans).
                    self._stale = self._stale or sha256 not in self._index
                continue
            fh.seek(offset)
            return fh, offset, length
        raise KeyError(sha256)

    def _find_good_copy(self, sha256: str, bad: tuple[str, int, int]) -> bytes | None:
        """Scan every pack for another record of ``sha256`` whose data is intact.

        A key searched in vain is not searched again until the packs change (a training job
        meeting many damaged samples must not rescan every pack for each).
        """
        with self._lock:
            self._refresh()
            generation = (len(self._scanned), sum(self._scanned.values()))
            if self._no_good_copy.get(sha256) == generation:
                return None
        digest = bytes.fromhex(sha256)
        for path in sorted(self.packs.glob("*" + PACK_SUFFIX)):
            try:
                found = scan_pack(path)
                with open(path, "rb") as fh:
                    for rec in found.records:
                        if rec.digest != digest or (path.name, rec.data_offset) == bad[:2]:
                            continue
                        fh.seek(rec.data_offset)
                        data = fh.read(rec.length)
                        if hashlib.sha256(data).digest() == digest:
                            with self._lock:
                                self._index[sha256] = (path.name, rec.data_offset, rec.length)
                            return data
            except FileNotFoundError:
                continue
        with self._lock:
            self._no_good_copy[sha256] = generation
        return None

    def keys(self) -> list[str]:
        """Every indexed key (after a refresh), for integrity checks."""
        with self._lock:
            self._refresh()
            return list(self._index)

    def location(self, sha256: str) -> tuple[str, int, int]:
        """(pack name, data offset, length) of a blob; ``KeyError`` when absent."""
        return self._locate(sha256)

    # -- writes ------------------------------------------------------------------------------
    def _open_writer(self) -> _Writer:
        name = f"{uuid.uuid4().hex}{PACK_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.packs / name, flags, self.file_mode)
        try:
            os.fchmod(fd, self.file_mode)  # the open mode is filtered by the umask
            # Held while the pack is open for appends: compaction skips locked packs. (Blocking:
            # a compactor may hold it for a moment while it looks at the new, empty pack.)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.packs / name)
            raise
        self._writer = _Writer(name, fd)
        self._scanned[name] = 0
        self._dir_dirty = True
        return self._writer

    def _reusable(self, name: str) -> bool:
        """True when an indexed record in pack ``name`` may stand for a new put of its bytes.

        Not when the pack is gone (compacted by another process) or marked by a compaction in
        progress: then the put writes a fresh copy, so that the caller's reference can never
        point at a record that compaction drops.
        """
        if self._writer is not None and name == self._writer.name:
            return True
        if os.path.exists(self.packs / (name + DOOMED_SUFFIX)):
            return False
        return os.path.exists(self.packs / name)

    def _abandon_writer(self, w: _Writer) -> None:
        """Stop appending to a pack whose state is unknown; forget its unsynced keys."""
        for key in w.unsynced:
            if self._index.get(key, ("",))[0] == w.name:
                del self._index[key]
        with contextlib.suppress(OSError):
            os.close(w.fd)
        self._writer = None

    def _rollback(self, w: _Writer, good_end: int) -> None:
        """After a failed write: cut the pack back to its last complete record, or abandon it."""
        try:
            os.ftruncate(w.fd, good_end)
            if os.fstat(w.fd).st_size == good_end:
                return
        except OSError:
            pass
        self._abandon_writer(w)

    def put(self, data: bytes) -> str:
        """Append ``data`` unless a usable record with the same sha256 is already stored.

        Raises ``OSError`` (errno preserved) when the bytes could not be written; the pack is
        then truncated back to its last complete record (or abandoned) and the key not stored.
        """
        digest = hashlib.sha256(data).digest()
        key = digest.hex()
        with self._lock:
            loc = self._index.get(key)
            if loc is not None and self._reusable(loc[0]):
                if self._writer is None or loc[0] != self._writer.name:
                    self._foreign.add(loc[0])  # make sure its bytes are fsynced too
                return key
            self._append(digest, key, data)
        return key

    def restore(self, data: bytes) -> str:
        """Write a fresh copy of ``data`` even when a record of its key exists (it may be the
        damaged one), and check that it reads back; ``BlobDamaged`` if it does not."""
        digest = hashlib.sha256(data).digest()
        key = digest.hex()
        with self._lock:
            self._append(digest, key, data)
        self.get(key)
        return key

    def _append(self, digest: bytes, key: str, data: bytes) -> None:
        """Append one record to this process's pack and index it there. Lock held."""
        w = self._writer
        if w is not None and (
            w.size >= self._pack_limit or time.monotonic() - w.opened > self._pack_max_age
        ):
            self._close_writer()
            w = None
        if w is None:
            w = self._open_writer()
        good_end = w.size
        header = encode_header(digest, len(data))
        try:
            _write_all(w.fd, header)
            _write_all(w.fd, data)
        except BaseException:
            self._rollback(w, good_end)
            raise
        w.size = good_end + len(header) + len(data)
        self._scanned[w.name] = w.size
        self._index[key] = (w.name, good_end + len(header), len(data))
        w.unsynced.append(key)
        self._put_gen += 1

    def _synced(self, target: int) -> bool:
        """True when every record up to ``target`` and every pending folder/foreign pack is
        durable. Lock held."""
        return self._synced_gen >= target and not self._foreign and not self._dir_dirty

    def sync(self) -> None:
        """fsync the active pack (and the folder after a new pack) so blobs survive power loss.

        Group commit: the fsync runs outside the index lock, so puts go on while it waits for
        the disk (8 ms here), and a caller that arrives while another caller's fsync runs waits
        for it and then finds its own records already covered; one fsync serves them all.
        """
        with self._lock:
            target = self._put_gen
            if self._synced(target):
                return
        with self._sync_lock:
            with self._lock:
                if self._synced(target):  # a concurrent sync covered our records
                    return
                w = self._writer
                gen = self._put_gen
                keys = list(w.unsynced) if w is not None else []
                # A duplicate of the descriptor: a put may close the pack (size limit) meanwhile.
                fd = os.dup(w.fd) if w is not None and keys else -1
                foreign, self._foreign = sorted(self._foreign), set()
                dir_dirty, self._dir_dirty = self._dir_dirty, False
            try:
                if fd >= 0:
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                for name in foreign:
                    try:
                        ffd = os.open(self.packs / name, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                    try:
                        os.fsync(ffd)
                    finally:
                        os.close(ffd)
                if dir_dirty:
                    fsync_dir(self.packs)
            except OSError:
                with self._lock:
                    self._foreign.update(foreign)
                    self._dir_dirty = self._dir_dirty or dir_dirty
                    if w is not None and w is self._writer:
                        # After a failed fsync the kernel may have dropped the dirty pages: the
                        # records are not trusted, and are written again by a later put.
                        self._abandon_writer(w)
                raise
            with self._lock:
                if w is not None:
                    synced = set(keys)
                    w.unsynced = [k for k in w.unsynced if k not in synced]
                self._synced_gen = max(self._synced_gen, gen)

    def seal(self) -> None:
        """Close the active pack (fsynced); the next put starts a new one.

        Compaction calls this so that this process's own pack can be compacted too.
        """
        with self._lock:
            self._close_writer()

    def _close_writer(self) -> None:
        w = self._writer
        if w is None:
            return
        try:
            os.fsync(w.fd)
        except OSError:
            self._abandon_writer(w)
            raise
        os.close(w.fd)
        self._writer = None
        if self._dir_dirty:
            fsync_dir(self.packs)
            self._dir_dirty = False

    @property
    def active_pack(self) -> str | None:
        """Name of the pack this instance appends to, if any."""
        w = self._writer
        return w.name if w is not None else None

    def close(self) -> None:
        """Flush and close the active pack."""
        with self._lock:
            self._close_writer()

    # -- compaction support (store/compaction.py) --------------------------------------------
    def forget_pack(self, name: str) -> None:
        """Re-index after pack ``name`` was compacted away (its live records are elsewhere)."""
        with self._lock:
            self._forget_pack(name)
            self._refresh()

    # -- reads -------------------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored (by any process); its bytes are not verified."""
        for _ in range(3):
            try:
                name = self._locate(sha256)[0]
            except KeyError:
                return False
            if os.path.exists(self.packs / name):
                return True
            with self._lock:  # compacted away under a stale index entry: look again
                self._forget_pack(name)
                self._refresh()
        return False

    def size(self, sha256: str) -> int:
        """Size of a blob in bytes."""
        return self._locate(sha256)[2]

    def get(self, sha256: str) -> bytes:
        """Read a whole blob and check its digest (a damaged pack never yields wrong bytes).

        Raises ``KeyError`` when absent, :class:`BlobDamaged` when present but damaged.
        """
        fh, offset, length = self._open_record(sha256)
        with fh:
            data = fh.read(length)
            name = Path(fh.name).name
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
        good = self._find_good_copy(sha256, (name, offset, length))
        if good is not None:
            return good
        raise BlobDamaged(sha256, f"{name} at offset {offset}")

    def read_range(
        self, sha256: str, start: int, length: int, chunk_size: int = 262144
    ) -> Iterator[bytes]:
        """Yield a byte range of a blob in chunks (for downloads with Range)."""
        fh, offset, total = self._open_record(sha256)
        with fh:
            if start < 0 or length < 0 or start + length > total:
                raise ValueError("range outside the blob")
            fh.seek(offset + start)
            remaining = length
            while remaining > 0:
                chunk = fh.read(min(chunk_size, remaining))
                if not chunk:
                    raise BlobDamaged(sha256, "truncated")
                remaining -= len(chunk)
                yield chunk


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte (a short write continues; a failed one raises)."""
    view = memoryview(data)
    while view:
        n = _write(fd, view)
        if n <= 0:
            raise OSError("write returned 0 bytes")
        view = view[n:]


def open_blob_store(
    url: str, *, file_mode: int | None = None, dir_mode: int | None = None
) -> BlobStore:
    """Open a blob store from a URL.

    ``file:///path`` or a plain path: local packs (created with ``file_mode``/``dir_mode``,
    default :func:`default_modes`); ``s3://bucket/prefix?endpoint_url=...``: S3-compatible
    object storage (see :mod:`mobiletrain.store.s3`).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else url
        return LocalPackBlobStore(path, file_mode=file_mode, dir_mode=dir_mode)
    if parsed.scheme == "s3":
        from mobiletrain.store.s3 import S3BlobStore  # boto3 only where it is used

        return S3BlobStore.from_url(url)
    raise ValueError(f"unsupported blob store URL scheme {parsed.scheme!r}; allowed: file, s3")
