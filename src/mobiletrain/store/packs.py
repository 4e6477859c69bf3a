"""The pack file format of the local blob store: records, their headers, scanning and files.

A pack is an append-only file of self-describing records (format and failure rules in
:mod:`mobiletrain.store.blobs`, which writes them). This module reads and checks them:
:func:`scan_pack` indexes the good records of a pack and resynchronises past damage, and holds
the file helpers (modes, folders, fsync of a folder) that the blob store and compaction share.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

MAGIC_V1 = b"MTB1"
MAGIC_V2 = b"MTB2"
_HEADER_V1 = struct.Struct(">4s32sQ")  # legacy, 44 bytes
_HEADER_V2 = struct.Struct(">4s32sQI")  # 48 bytes; the last field is crc32 of the first 44
HEADER_SIZE = _HEADER_V2.size
_PACK_LIMIT = 256 * 1024 * 1024
# A writer rolls its pack over after this long, so that compaction (which never touches a pack
# that is still open for appends) can reach deleted records of a long-lived process.
_PACK_MAX_AGE_S = 3600.0
_RESYNC_CHUNK = 1 << 20
DEFAULT_FILE_MODE = 0o600
DEFAULT_DIR_MODE = 0o700
PACK_SUFFIX = ".pack"
# Written by compaction next to a pack it is about to rewrite (see store/compaction.py).
DOOMED_SUFFIX = ".doomed"


def encode_header(digest: bytes, length: int) -> bytes:
    """The 48-byte ``MTB2`` header of a record."""
    head = _HEADER_V1.pack(MAGIC_V2, digest, length)
    return head + struct.pack(">I", zlib.crc32(head))


class PackRecord(NamedTuple):
    """One record found by a scan."""

    digest: bytes  # sha256 of the data, 32 bytes
    header_offset: int
    data_offset: int
    length: int

    @property
    def end(self) -> int:
        """Offset just past the record."""
        return self.data_offset + self.length


@dataclass
class ScanResult:
    """What :func:`scan_pack` found between ``start`` and the file's size."""

    records: list[PackRecord] = field(default_factory=list)
    # (start, end) byte ranges that hold no valid record (skipped by a resync).
    damaged: list[tuple[int, int]] = field(default_factory=list)
    # Where the next scan continues: after the last complete record, or at a header whose data is
    # not all written yet (another process is appending), or past a damaged tail.
    next_offset: int = 0
    # True when the scan stopped at a record that is not complete yet (it may still be written).
    incomplete_tail: bool = False


def _parse_header(buf: bytes) -> tuple[bytes, int, int] | None:
    """(digest, length, header size) of a valid header at the start of ``buf``, or None.

    A legacy ``MTB1`` header carries no checksum: it is returned as plausible, and callers
    that resynchronise verify its data instead.
    """
    if buf[:4] == MAGIC_V2 and len(buf) >= HEADER_SIZE:
        _, digest, length, crc = _HEADER_V2.unpack(buf[:HEADER_SIZE])
        if zlib.crc32(buf[:44]) != crc:
            return None
        return digest, length, HEADER_SIZE
    if buf[:4] == MAGIC_V1 and len(buf) >= _HEADER_V1.size:
        _, digest, length = _HEADER_V1.unpack(buf[: _HEADER_V1.size])
        return digest, length, _HEADER_V1.size
    return None


def _data_matches(fh: BinaryIO, offset: int, length: int, digest: bytes) -> bool:
    fh.seek(offset)
    h = hashlib.sha256()
    remaining = length
    while remaining > 0:
        chunk = fh.read(min(remaining, _RESYNC_CHUNK))
        if not chunk:
            return False
        h.update(chunk)
        remaining -= len(chunk)
    return h.digest() == digest


def _resync(fh: BinaryIO, start: int, end: int) -> int | None:
    """Offset of the next trustworthy header in ``[start, end)``, or None."""
    pos = start
    while pos < end:
        fh.seek(pos)
        chunk = fh.read(min(_RESYNC_CHUNK + HEADER_SIZE, end - pos))
        if not chunk:
            return None
        i = 0
        while True:
            j2 = chunk.find(MAGIC_V2, i)
            j1 = chunk.find(MAGIC_V1, i)
            candidates = [j for j in (j1, j2) if j >= 0]
            if not candidates:
                break
            j = min(candidates)
            i = j + 1
            at = pos + j
            fh.seek(at)
            parsed = _parse_header(fh.read(HEADER_SIZE))
            if parsed is None:
                continue
            digest, length, hsize = parsed
            if chunk[j : j + 4] == MAGIC_V2:
                return at  # checksummed header: trusted (its data may still be incomplete)
            # An unchecksummed legacy header is trusted only when its data matches.
            if at + hsize + length <= end and _data_matches(fh, at + hsize, length, digest):
                return at
        if pos + len(chunk) >= end:
            return None
        pos += len(chunk) - HEADER_SIZE  # overlap: a magic may straddle the chunk border
    return None


def scan_pack(path: Path | str, start: int = 0, end: int | None = None) -> ScanResult:
    """Scan a pack's records from ``start`` (a record boundary) to ``end`` (default: its size)."""
    result = ScanResult(next_offset=start)
    with open(path, "rb") as fh:
        if end is None:
            end = os.fstat(fh.fileno()).st_size
        pos = start
        while pos < end:
            # seek + read through the buffered file: a seek inside its buffer costs no system
            # call (measured faster than reading windows of the file by hand).
            fh.seek(pos)
            buf = fh.read(HEADER_SIZE if end - pos >= HEADER_SIZE else end - pos)
            if len(buf) < HEADER_SIZE and MAGIC_V2.startswith(buf[:4]):
                result.incomplete_tail = True  # a header still being written
                break
            parsed = _parse_header(buf)
            if parsed is not None:
                digest, length, hsize = parsed
                if pos + hsize + length <= end:
                    result.records.append(PackRecord(digest, pos, pos + hsize, length))
                    pos += hsize + length
                    continue
                if hsize == HEADER_SIZE:
                    result.incomplete_tail = True  # data not all written (yet)
                    break
                # A legacy header without checksum that runs past the end: not trusted.
            nxt = _resync(fh, pos + 1, end)
            if nxt is None:
                result.damaged.append((pos, end))
                pos = end
                break
            result.damaged.append((pos, nxt))
            pos = nxt
        result.next_offset = pos
    return result


def default_modes() -> tuple[int, int]:
    """(file mode, folder mode): ``MOBILETRAIN_FILE_MODE`` (octal, e.g. ``640``) or 0600/0700.

    Read from the environment so that worker processes, which inherit it, create packs with the
    same mode as the server.
    """
    raw = os.environ.get("MOBILETRAIN_FILE_MODE", "")
    try:
        file_mode = int(raw, 8) & 0o666 if raw else DEFAULT_FILE_MODE
    except ValueError:
        file_mode = DEFAULT_FILE_MODE
    return file_mode, file_mode | ((file_mode & 0o444) >> 2)


def make_dir(path: Path, mode: int = DEFAULT_DIR_MODE) -> None:
    """Create a folder (and missing parents) with ``mode``; an existing one is left as it is."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=mode)
            os.chmod(d, mode)  # mkdir's mode is filtered by the umask


def fsync_dir(path: Path) -> None:
    """fsync a folder so that a file created or renamed in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
