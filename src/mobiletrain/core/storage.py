"""Disk full as an expected condition: how it is recognised and the free-space reserve.

A full disk shows up in many shapes: ``OSError(ENOSPC)`` or ``EDQUOT`` from a file write,
SQLite's ``database or disk is full`` (``SQLITE_FULL``) wrapped by SQLAlchemy, PostgreSQL's
SQLSTATE ``53100`` (``disk_full``). :func:`is_storage_full` recognises all of them through the
exception's cause chain, so the transports answer ``STORAGE_FULL`` (code 74) with one log line
instead of ``INTERNAL`` with a stack trace.

:class:`SpaceGuard` refuses new uploads while the free space of the data folder is below a
reserve, before the disk is actually full, so that the database, job folders and checkpoints can
still write. It reads ``statvfs`` at most once a second; uploads work again by themselves as soon
as space is back.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mobiletrain.core.errors import ErrorCode, MobiletrainError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""errno values that mean "no room left" (disk full, quota of the server's user used up)."""

_SQLITE_FULL = 13  # sqlite3.Error.sqlite_errorcode of SQLITE_FULL
_PG_DISK_FULL = "53100"  # PostgreSQL SQLSTATE disk_full
_FULL_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded")

MIB = 1024 * 1024


def is_storage_full(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its cause chain) means the storage is full."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MobiletrainError):
            if current.code is ErrorCode.STORAGE_FULL:
                return True
        elif isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if _PG_DISK_FULL in (getattr(current, "sqlstate", None), getattr(current, "pgcode", None)):
            return True
        text = str(current).lower()
        if any(message in text for message in _FULL_MESSAGES):
            return True
        # SQLAlchemy keeps the driver's exception in ``orig``.
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False


def storage_full_error(exc: BaseException) -> MobiletrainError | None:
    """``STORAGE_FULL`` for a full-disk exception (``exc`` itself if it is one), else None."""
    if isinstance(exc, MobiletrainError):
        return exc if exc.code is ErrorCode.STORAGE_FULL else None
    if not is_storage_full(exc):
        return None
    return MobiletrainError(
        ErrorCode.STORAGE_FULL, "the server's storage is full; nothing more was stored, retry later"
    )


def reserve_bytes(total_bytes: int, reserve_mib: float, reserve_percent: float) -> int:
    """The reserve of a file system of ``total_bytes``: the smaller of the two settings.

    Either setting at 0 switches the reserve off (only a really full disk refuses uploads).
    """
    if reserve_mib <= 0 or reserve_percent <= 0:
        return 0
    return int(min(reserve_mib * MIB, total_bytes * reserve_percent / 100))


class SpaceGuard:
    """Free space of the folders the server writes to, against a reserve.

    ``paths`` are folders (the data folder, a local blob folder); the smallest free space among
    their file systems counts. Results are cached for ``ttl`` seconds so that a check per upload
    costs nothing.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        reserve_mib: float,
        reserve_percent: float,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = list(paths)
        self.reserve_mib = reserve_mib
        self.reserve_percent = reserve_percent
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._free = 0
        self._reserve = 0

    def _measure(self) -> tuple[int, int]:
        """(free bytes, reserve bytes) of the fullest file system among ``paths``."""
        best: tuple[int, int] | None = None
        for path in self.paths:
            try:
                st = os.statvfs(path)
            except OSError:
                continue  # not created yet, or on a store without a file system
            free = st.f_bavail * st.f_frsize  # what an unprivileged writer may still use
            reserve = reserve_bytes(
                st.f_blocks * st.f_frsize, self.reserve_mib, self.reserve_percent
            )
            if best is None or free - reserve < best[0] - best[1]:
                best = (free, reserve)
        return best if best is not None else (1 << 62, 0)

    def space(self) -> tuple[int, int]:
        """(free bytes, reserve bytes), measured at most once per ``ttl``."""
        with self._lock:
            now = self._clock()
            if now - self._checked_at >= self.ttl:
                self._free, self._reserve = self._measure()
                self._checked_at = now
            return self._free, self._reserve

    def problem(self) -> str | None:
        """A one-line reason while free space is below the reserve (health), else None."""
        free, reserve = self.space()
        if free > reserve:
            return None
        if reserve == 0:
            return "storage full: no free space left"
        return f"storage below reserve: {free // MIB} MiB free, the reserve is {reserve // MIB} MiB"

    def check(self) -> None:
        """Raise ``STORAGE_FULL`` while free space is below the reserve (before new uploads)."""
        reason = self.problem()
        if reason is not None:
            raise MobiletrainError(
                ErrorCode.STORAGE_FULL,
                f"the server refuses uploads while its {reason}; retry later",
            )
