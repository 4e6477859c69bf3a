"""Content-addressed blob stores, chosen by URL scheme.

The local store packs blobs into append-only shard files instead of creating one file per blob:
file creation is the bottleneck of ingest (see the core-system issue), and packs make training
reads sequential. Each process appends to a pack of its own (named by a random id), so server and
worker processes never interleave writes. Every record is self-describing::

    b"MTB1" | sha256 (32 bytes) | length (8 bytes, big endian) | data

so the index is rebuilt by scanning record headers, and a torn record at the end of a pack (a
crash mid-write) is simply never indexed.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from mobiletrain.core.ports import BlobStore

_MAGIC = b"MTB1"
_HEADER = struct.Struct(">4s32sQ")
_PACK_LIMIT = 256 * 1024 * 1024


class LocalPackBlobStore(BlobStore):
    """Blobs packed in append-only files under ``root/packs``; safe across processes."""

    def __init__(self, root: str | Path, pack_limit: int = _PACK_LIMIT) -> None:
        self.root = Path(root)
        self._packs = self.root / "packs"
        self._packs.mkdir(parents=True, exist_ok=True)
        self._pack_limit = pack_limit
        self._lock = threading.Lock()
        # sha256 hex -> (pack name, data offset, length)
        self._index: dict[str, tuple[str, int, int]] = {}
        # pack name -> offset up to which it has been scanned
        self._scanned: dict[str, int] = {}
        self._writer: tuple[str, BinaryIO] | None = None
        self._writer_size = 0
        self._dirty = False
        self._refresh()

    # -- index -------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Index records appended to any pack since the last scan (by us or other processes)."""
        for path in sorted(self._packs.glob("*.pack")):
            name = path.name
            pos = self._scanned.get(name, 0)
            try:
                end = path.stat().st_size
            except FileNotFoundError:
                continue
            if pos >= end:
                continue
            with open(path, "rb") as fh:
                fh.seek(pos)
                while pos + _HEADER.size <= end:
                    header = fh.read(_HEADER.size)
                    magic, digest, length = _HEADER.unpack(header)
                    if magic != _MAGIC or pos + _HEADER.size + length > end:
                        break  # torn or still being written: stop here, retry later
                    data_offset = pos + _HEADER.size
                    self._index.setdefault(digest.hex(), (name, data_offset, length))
                    pos = data_offset + length
                    fh.seek(pos)
            self._scanned[name] = pos

    def _locate(self, sha256: str) -> tuple[str, int, int]:
        loc = self._index.get(sha256)
        if loc is None:
            with self._lock:
                self._refresh()
            loc = self._index.get(sha256)
        if loc is None:
            raise KeyError(sha256)
        return loc

    # -- writes ------------------------------------------------------------------------------
    def _open_writer(self) -> tuple[str, BinaryIO]:
        name = f"{uuid.uuid4().hex}.pack"
        fh = open(self._packs / name, "ab")  # noqa: SIM115 - kept open for appends
        self._writer = (name, fh)
        self._writer_size = 0
        self._scanned[name] = 0
        return self._writer

    def put(self, data: bytes) -> str:
        """Append ``data`` unless a blob with the same sha256 is already stored."""
        digest = hashlib.sha256(data).digest()
        key = digest.hex()
        if key in self._index:
            return key
        with self._lock:
            if key in self._index:
                return key
            if self._writer is None or self._writer_size >= self._pack_limit:
                self._close_writer()
                self._open_writer()
            assert self._writer is not None
            name, fh = self._writer
            offset = self._writer_size
            record = _HEADER.pack(_MAGIC, digest, len(data))
            fh.write(record)
            fh.write(data)
            fh.flush()
            self._writer_size += len(record) + len(data)
            self._scanned[name] = self._writer_size
            self._index[key] = (name, offset + _HEADER.size, len(data))
            self._dirty = True
        return key

    def sync(self) -> None:
        """fsync the active pack so that blobs survive a power loss or SIGKILL."""
        with self._lock:
            if self._writer is not None and self._dirty:
                os.fsync(self._writer[1].fileno())
                self._dirty = False

    def _close_writer(self) -> None:
        if self._writer is not None:
            fh = self._writer[1]
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            self._writer = None
            self._dirty = False

    def close(self) -> None:
        """Flush and close the active pack."""
        with self._lock:
            self._close_writer()

    # -- reads -------------------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored (by any process)."""
        try:
            self._locate(sha256)
        except KeyError:
            return False
        return True

    def size(self, sha256: str) -> int:
        """Size of a blob in bytes."""
        return self._locate(sha256)[2]

    def get(self, sha256: str) -> bytes:
        """Read a whole blob and check its digest (a damaged pack never yields wrong bytes)."""
        name, offset, length = self._locate(sha256)
        with open(self._packs / name, "rb") as fh:
            fh.seek(offset)
            data = fh.read(length)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"blob {sha256} is damaged")
        return data

    def read_range(
        self, sha256: str, start: int, length: int, chunk_size: int = 262144
    ) -> Iterator[bytes]:
        """Yield a byte range of a blob in chunks (for downloads with Range)."""
        name, offset, total = self._locate(sha256)
        if start < 0 or length < 0 or start + length > total:
            raise ValueError("range outside the blob")
        with open(self._packs / name, "rb") as fh:
            fh.seek(offset + start)
            remaining = length
            while remaining > 0:
                chunk = fh.read(min(chunk_size, remaining))
                if not chunk:
                    raise OSError(f"blob {sha256} is truncated")
                remaining -= len(chunk)
                yield chunk


def open_blob_store(url: str) -> BlobStore:
    """Open a blob store from a URL.

    ``file:///path`` or a plain path: local packs; ``s3://bucket/prefix?endpoint_url=...``:
    S3-compatible object storage (see :mod:`mobiletrain.store.s3`).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalPackBlobStore(parsed.path if parsed.scheme else url)
    if parsed.scheme == "s3":
        from mobiletrain.store.s3 import S3BlobStore  # boto3 only where it is used

        return S3BlobStore.from_url(url)
    raise ValueError(f"unsupported blob store URL scheme {parsed.scheme!r}; allowed: file, s3")
