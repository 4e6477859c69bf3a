"""Tolerant readers of stored JSON: a value of the expected type, or a neutral one.

Manifests and metrics written by every version of the server must still load, and odd stored
values (a hand-edited file, a NaN) must never make a version unreadable: each reader returns
the value when it has the expected shape and None / empty otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mobiletrain.core.evaluation import ClassScore


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past the largest double
        return None
    return number if math.isfinite(number) else None


def integer(value: Any) -> int | None:
    """An int (a finite number truncated), or None."""
    found = number(value)
    return int(found) if found is not None else None


def mapping(value: Any) -> dict[str, Any]:
    """A copy of a JSON object, or {} for anything else."""
    return dict(value) if isinstance(value, Mapping) else {}


def strings(value: Any) -> list[str]:
    """A list of strings (items converted), or [] when not a list."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [str(v) for v in value]
    return []


def shape(value: Any) -> list[int | None]:
    """A tensor shape: ints and None (unknown) only; other items are dropped."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [None if v is None else int(v) for v in value if v is None or integer(v) is not None]


def matrix(value: Any) -> list[list[int]]:
    """A matrix of counts (rows of ints, odd cells 0), or []."""
    if not isinstance(value, list):
        return []
    return [[integer(c) or 0 for c in row] for row in value if isinstance(row, list)]


def class_scores(value: Any) -> list[ClassScore]:
    """Per-class rows ``{label, precision, recall, f1, support}``; odd values become 0."""
    out: list[ClassScore] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, Mapping):
            continue
        out.append(
            ClassScore(
                label=str(entry.get("label", "")),
                precision=number(entry.get("precision")) or 0.0,
                recall=number(entry.get("recall")) or 0.0,
                f1=number(entry.get("f1")) or 0.0,
                support=integer(entry.get("support")) or 0,
            )
        )
    return out


def unmodelled(data: Mapping[str, Any], known: Sequence[str]) -> dict[str, Any]:
    """The keys a type does not model, kept as they are (written back by ``to_dict``)."""
    return {k: v for k, v in data.items() if k not in known}
