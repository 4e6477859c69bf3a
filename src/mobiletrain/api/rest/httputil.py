"""Small HTTP helpers: ETags and byte ranges (request limits are in :mod:`.limits`)."""

from __future__ import annotations

import re
import urllib.parse


def attachment(file_name: str) -> str:
    """A ``Content-Disposition`` value saving the body as ``file_name``: a plain ASCII name
    as it is; any other (project names are free text) as an ASCII stand-in plus the exact
    name in RFC 6266's ``filename*``."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", file_name)
    if plain == file_name:
        return f'attachment; filename="{file_name}"'
    exact = urllib.parse.quote(file_name, safe="")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"


def strong_etag(sha256: str) -> str:
    """The ETag of content identified by its SHA-256."""
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` / ``If-Range`` value names ``etag`` (or is ``*``)."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


# ASCII digits only: ``\d`` would also match other scripts' digits.
_RANGE = re.compile(r"^bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$", re.IGNORECASE)

_HUGE = 10**18
"""Stands for any offset of more than 18 digits (beyond every file; ``int()`` of thousands of
digits is refused by Python and would be slow anyway)."""


def _offset(digits: str) -> int:
    significant = digits.lstrip("0")
    return _HUGE if len(significant) > 18 else int(significant or "0")


class RangeNotSatisfiable(Exception):
    """The requested byte range lies outside the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` of a single ``Range: bytes=...`` header, or None.

    Returns None when there is no header or it should be ignored (malformed, another unit,
    several ranges): the whole file is then sent, as RFC 9110 allows. Raises
    :class:`RangeNotSatisfiable` when the range is valid but outside the file.
    """
    if not header:
        return None
    if len(header) > 4096:
        # Longer than any sensible single range: refused rather than parsed.
        raise RangeNotSatisfiable
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = _offset(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    start = _offset(first)
    end = _offset(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(end, size - 1)
