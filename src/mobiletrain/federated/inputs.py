"""What devices send, checked before anything is stored: registration info, update metrics,
the error text of a failed round and the update's bytes (read at most to their expected size).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError

MAX_INFO_ENTRIES = 16
"""Most entries a device's registration ``info`` may have."""
MAX_INFO_KEY = 64
"""Longest key of a registration ``info`` entry."""
MAX_INFO_VALUE = 256
"""Longest string value of a registration ``info`` entry."""
MAX_ERROR_CHARS = 1000
"""Longest ``error`` an update may carry."""
DECLARED_SAMPLES_KEY = "num_samples"
"""The ``info`` entry in which a device declares its local dataset size at registration."""


def join_update(
    data: bytes | Iterable[bytes], limit: int, buffer: bytearray | None = None
) -> bytes | bytearray:
    """The update's bytes in one buffer, reading at most ``limit + 1`` (a longer one is
    wrong anyway). ``buffer`` (``limit`` bytes, reused from update to update) is filled in
    place and returned when the update has exactly ``limit`` bytes; a shorter or longer
    one comes back as a copy (rejected as SHAPE anyway)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if buffer is None or len(buffer) != limit:
        buffer = bytearray(limit)  # the expected size: filled in place, no regrowth
    size = 0
    for chunk in data:
        end = size + len(chunk)
        if end > limit:
            return bytes(buffer[:size]) + bytes(chunk)  # too long: rejected as SHAPE anyway
        buffer[size:end] = chunk
        size = end
    if size < limit:
        return bytes(buffer[:size])
    return buffer


def clean_info(info: dict[str, Any]) -> dict[str, Any]:
    """A registration's ``info``: FIELD_TOO_LONG past the entry, key and value limits;
    values that are not strings or numbers are dropped."""
    if len(info) > MAX_INFO_ENTRIES:
        raise MobiletrainError(
            ErrorCode.FIELD_TOO_LONG,
            f"info has {len(info)} entries; at most {MAX_INFO_ENTRIES} are allowed",
        )
    out: dict[str, Any] = {}
    for key, value in info.items():
        name = str(key)
        if len(name) > MAX_INFO_KEY:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"info key {name[:16]!r}... is {len(name)} characters; the limit is {MAX_INFO_KEY}",
            )
        if isinstance(value, str) and len(value) > MAX_INFO_VALUE:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"info value of {name!r} is {len(value)} characters; the limit is {MAX_INFO_VALUE}",
            )
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out[name] = value
    return out


def declared_samples(info: dict[str, Any]) -> int | None:
    """The local dataset size a device declares (``info["num_samples"]``), if it does."""
    value = info.get(DECLARED_SAMPLES_KEY)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())  # gRPC sends every attribute as a string
    else:
        number = 0
    if number < 1:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"info {DECLARED_SAMPLES_KEY} must be a positive whole number, got {value!r}",
        )
    return number


def clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """At most 16 numeric metrics with names of at most 64 characters (FIELD_TOO_LONG past
    either); devices report loss, accuracy, ...; other values are dropped."""
    if len(metrics) > MAX_INFO_ENTRIES or any(len(str(k)) > MAX_INFO_KEY for k in metrics):
        raise MobiletrainError(
            ErrorCode.FIELD_TOO_LONG,
            f"at most {MAX_INFO_ENTRIES} metrics with names of at most {MAX_INFO_KEY} characters",
        )
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if np.isfinite(number):
            out[str(key)] = number
    return out
