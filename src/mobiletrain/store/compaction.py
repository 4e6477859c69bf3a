"""Compaction: the bytes of deleted samples (and of any blob nobody refers to) leave the disk.

Packs are append-only, so deleting a sample row leaves its record in a pack. Compaction rewrites
each pack that holds such records into a new pack that holds only the referenced ones, then
removes the old pack. It runs online — the server keeps accepting uploads and serving reads —
and a kill at any point leaves a store that opens with every live blob readable.

One run (:func:`compact_packs`):

1. Take ``packs/compaction.lock`` (``flock``): one compactor at a time; remove what a killed run
   left (``*.pack.tmp``, ``*.doomed`` of packs that are gone).
2. Read the referenced keys (:meth:`MetadataStore.referenced_blobs`). Every pack that is not
   open for appends (its writer holds an ``flock`` on it) and holds unreferenced records, a
   damaged region, a torn tail or records of the legacy ``MTB1`` format is a candidate; this
   process's own pack is sealed first when it holds such records.
3. Write ``<pack>.doomed`` next to each candidate (naming the pack that will replace it). From
   then on a ``put`` of bytes found in a doomed pack writes a fresh copy instead of
   deduplicating against the old record, so nothing new comes to depend on it.
4. Wait ``grace_s``, then read the referenced keys again. The wait covers a ``put`` that
   deduplicated against a record just *before* the marker appeared and whose metadata row
   commits a moment later: it is seen by the second read as long as the put→commit time is
   shorter than the grace (requests are bounded by their timeouts, far below the default).
5. Copy the records referenced in the second read into ``<new>.pack.tmp``, fsync, rename to
   ``<new>.pack``, fsync the folder; unlink the old pack; remove the marker.

Readers that still hold a location in the old pack either have it open (POSIX keeps the bytes
until they close it) or get ``FileNotFoundError`` and re-index (see
:class:`~mobiletrain.store.blobs.LocalPackBlobStore`). A kill before the rename leaves the old
pack and a marker (the next run starts over, the marker's age counting as grace); a kill after
the rename leaves both packs with the same live records (the next run finishes the unlink).

Bound: a deleted blob's bytes are gone at most ``interval + grace + run time`` after the delete
(with a ``min_dead_fraction`` threshold: ``max_delay + interval + grace + run time``),
once the pack holding them is no longer open for appends (the server seals its own; workers close
theirs when a job ends; a writer rolls its pack over after an hour).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobiletrain.core.ports import BlobStore
from mobiletrain.store.blobs import (
    DOOMED_SUFFIX,
    HEADER_SIZE,
    PACK_SUFFIX,
    LocalPackBlobStore,
    PackRecord,
    encode_header,
    fsync_dir,
    scan_pack,
)

log = logging.getLogger("mobiletrain.compaction")

LOCK_NAME = "compaction.lock"
TMP_SUFFIX = ".tmp"
_COPY_CHUNK = 1 << 20

# Called at each step of a run with (step, pack name): tests pause or kill the process there.
Hook = Callable[[str, str], None]


@dataclass
class CompactionReport:
    """What one run did."""

    packs_scanned: int = 0
    packs_compacted: int = 0
    records_dropped: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    skipped: str = ""  # why nothing was done (another run holds the lock, stopped ...)
    seconds: float = 0.0
    objects_deleted: int = 0  # S3
    errors: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        """Bytes the run gave back to the file system."""
        return self.bytes_before - self.bytes_after


@dataclass
class _Candidate:
    path: Path
    fd: int  # holds an flock on the pack for the whole run
    target: str  # the pack that replaces it
    live_bytes: int  # what the new pack needs on disk
    marked_at: float = 0.0


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``; None when a writer holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _live_records(scan: list[PackRecord], live: set[str]) -> list[PackRecord]:
    """The records to keep: referenced, first copy of each key within the pack."""
    seen: set[bytes] = set()
    keep = []
    for rec in scan:
        if rec.digest in seen or rec.digest.hex() not in live:
            continue
        seen.add(rec.digest)
        keep.append(rec)
    return keep


def _write_marker(path: Path, target: str, mode: int) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, json.dumps({"target": target, "created": time.time()}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_marker(path: Path) -> str | None:
    try:
        target = json.loads(path.read_bytes()).get("target")
    except (OSError, ValueError, AttributeError):
        return None
    return target if isinstance(target, str) and target.endswith(PACK_SUFFIX) else None


def _copy_records(src_fd: int, dst: Path, records: list[PackRecord], mode: int) -> None:
    """Write ``records`` of the pack open as ``src_fd`` into a new file, fsynced."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        for rec in records:
            os.write(fd, encode_header(rec.digest, rec.length))  # legacy records become MTB2
            pos, remaining = rec.data_offset, rec.length
            while remaining > 0:
                chunk = os.pread(src_fd, min(_COPY_CHUNK, remaining), pos)
                if not chunk:
                    raise OSError(f"pack shrank while being compacted: {dst.name}")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                pos += len(chunk)
                remaining -= len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_leftovers(packs: Path) -> None:
    """Remove what a killed run left behind (the caller holds the compaction lock)."""
    for tmp in packs.glob("*" + TMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    for marker in packs.glob("*" + PACK_SUFFIX + DOOMED_SUFFIX):
        if not marker.with_name(marker.name[: -len(DOOMED_SUFFIX)]).exists():
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()


def _wait(seconds: float, stop: threading.Event | None) -> bool:
    """Sleep; False when ``stop`` was set meanwhile."""
    if seconds <= 0:
        return not (stop is not None and stop.is_set())
    if stop is None:
        time.sleep(seconds)
        return True
    return not stop.wait(seconds)


def compact_packs(
    store: LocalPackBlobStore,
    referenced: Callable[[], set[str]],
    *,
    grace_s: float = 300.0,
    stop: threading.Event | None = None,
    hook: Hook | None = None,
    min_dead_fraction: float = 0.0,
) -> CompactionReport:
    """Drop the records of every blob not in ``referenced()`` from the store's packs (see above).

    ``min_dead_fraction``: rewrite only packs whose unreferenced bytes are at least this share
    of the pack (0: any unreferenced byte); large stores trade a longer delay for less I/O.
    """
    started = time.monotonic()
    report = CompactionReport()
    packs = store.packs
    step = hook or (lambda _step, _name: None)
    lock_fd = os.open(packs / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, store.file_mode)
    candidates: list[_Candidate] = []
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.skipped = "another compaction is running"
            return report
        _clean_leftovers(packs)
        live = referenced()
        own = store.active_pack
        if own is not None:
            recs = scan_pack(packs / own).records
            total = sum(r.end - r.header_offset for r in recs)
            dead = total - sum(r.end - r.header_offset for r in _live_records(recs, live))
            if dead > 0 and dead >= min_dead_fraction * total:
                store.seal()  # our own pack holds dead records: stop appending to it
        for path in sorted(packs.glob("*" + PACK_SUFFIX)):
            fd = _try_lock(path)
            if fd is None:
                continue  # open for appends by a writer (or already gone)
            report.packs_scanned += 1
            marker = path.with_name(path.name + DOOMED_SUFFIX)
            size = os.fstat(fd).st_size
            found = scan_pack(path)
            kept = _live_records(found.records, live)
            kept_bytes = sum(r.end - r.header_offset for r in kept)
            # A pack of the legacy format is rewritten too: its records get header checksums.
            legacy = any(r.data_offset - r.header_offset != HEADER_SIZE for r in kept)
            dead = size - kept_bytes
            worth = dead > 0 and dead >= min_dead_fraction * size
            if not worth and not legacy and not marker.exists():
                os.close(fd)
                continue
            target = _read_marker(marker) if marker.exists() else None
            cand = _Candidate(path, fd, target or f"{uuid.uuid4().hex}{PACK_SUFFIX}", kept_bytes)
            if target is None:
                _write_marker(marker, cand.target, store.file_mode)
            cand.marked_at = marker.stat().st_mtime
            candidates.append(cand)
        if not candidates:
            return report
        fsync_dir(packs)
        for cand in candidates:
            step("marked", cand.path.name)
        # Grace, counted from the oldest marker (a killed run's markers have already served it).
        if not _wait(max(c.marked_at for c in candidates) + grace_s - time.time(), stop):
            report.skipped = "stopped during the grace period"
            return report
        live = referenced()
        candidates.sort(key=lambda c: c.live_bytes)  # least room needed first (a full disk)
        for cand in candidates:
            if stop is not None and stop.is_set():
                report.skipped = "stopped"
                break
            try:
                _compact_one(store, cand, live, report, step)
            except OSError as exc:
                # E.g. no room for the new pack on a full disk: the old pack stays as it was,
                # marked, and the next run tries again; smaller packs still get their turn.
                report.errors.append(f"{cand.path.name}: {exc}")
                log.warning("compaction of pack %s failed: %s", cand.path.name, exc)
    finally:
        for cand in candidates:
            with contextlib.suppress(OSError):
                os.close(cand.fd)
        os.close(lock_fd)
        report.seconds = time.monotonic() - started
    return report


def _compact_one(
    store: LocalPackBlobStore,
    cand: _Candidate,
    live: set[str],
    report: CompactionReport,
    step: Hook,
) -> None:
    packs = store.packs
    size = os.fstat(cand.fd).st_size
    target = packs / cand.target
    found = scan_pack(cand.path)
    kept = _live_records(found.records, live)
    if not target.exists() and kept:
        tmp = target.with_name(target.name + TMP_SUFFIX)
        try:
            _copy_records(cand.fd, tmp, kept, store.file_mode)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # on a full disk, give the space back at once
            raise
        step("written", cand.path.name)
        os.replace(tmp, target)
        fsync_dir(packs)
        step("renamed", cand.path.name)
    if target.exists():
        report.bytes_after += target.stat().st_size
    cand.path.unlink()
    fsync_dir(packs)
    store.forget_pack(cand.path.name)
    step("unlinked", cand.path.name)
    with contextlib.suppress(FileNotFoundError):
        cand.path.with_name(cand.path.name + DOOMED_SUFFIX).unlink()
    fsync_dir(packs)
    report.packs_compacted += 1
    report.bytes_before += size
    report.records_dropped += len(found.records) - len(kept)
    log.info(
        "compacted pack %s: %d of %d records kept, %d bytes freed",
        cand.path.name,
        len(kept),
        len(found.records),
        size - (target.stat().st_size if target.exists() else 0),
    )


def compact(
    blobs: BlobStore,
    referenced: Callable[[], set[str]],
    *,
    grace_s: float = 300.0,
    stop: threading.Event | None = None,
    min_dead_fraction: float = 0.0,
) -> CompactionReport:
    """One compaction run on any blob store: local packs, or unreferenced objects on S3."""
    if isinstance(blobs, LocalPackBlobStore):
        return compact_packs(
            blobs, referenced, grace_s=grace_s, stop=stop, min_dead_fraction=min_dead_fraction
        )
    delete = getattr(blobs, "delete_unreferenced", None)
    if delete is None:
        return CompactionReport(skipped=f"{type(blobs).__name__} has no compaction")
    report: CompactionReport = delete(referenced, grace_s=grace_s, stop=stop)
    return report


class CompactionLoop:
    """Runs :func:`compact` every ``interval_s`` in a daemon thread (the server's)."""

    def __init__(
        self,
        blobs: BlobStore,
        referenced: Callable[[], set[str]],
        interval_s: float,
        grace_s: float,
        min_dead_fraction: float = 0.0,
        max_delay_s: float = 86400.0,
    ) -> None:
        self.blobs = blobs
        self.referenced = referenced
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.min_dead_fraction = min_dead_fraction
        self.max_delay_s = max_delay_s
        self._last_full = -float("inf")
        self.last: CompactionReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop (the first run comes one interval after start)."""
        if self._thread is None and self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="compaction", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the loop; a run in its grace period gives up (its markers stay for the next)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            # With a dead-fraction threshold, a full pass (any dead byte) still runs at least
            # every max_delay_s: that keeps the bound on how long deleted bytes stay.
            full = time.monotonic() - self._last_full >= self.max_delay_s
            fraction = 0.0 if full else self.min_dead_fraction
            try:
                self.last = compact(
                    self.blobs,
                    self.referenced,
                    grace_s=self.grace_s,
                    stop=self._stop,
                    min_dead_fraction=fraction,
                )
                if full and not self.last.skipped:
                    self._last_full = time.monotonic()
            except Exception as exc:  # the loop must survive a bad run
                log.warning("compaction failed: %s: %s", type(exc).__name__, exc)
