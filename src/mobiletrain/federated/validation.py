"""Checks every update passes before it may count; a failed check names its reason.

Round checks (``stale-round``, ``not-selected``, ``duplicate``) live in
:class:`~mobiletrain.federated.rounds.RoundState`; content checks are here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class RejectReason(enum.StrEnum):
    """Why an update was excluded from aggregation (stable strings, also on the wire)."""

    STALE_ROUND = "stale-round"  # for a round that is not the open one
    NOT_SELECTED = "not-selected"  # the device was not selected for this round
    DUPLICATE = "duplicate"  # the device already answered this round (the first answer counts)
    SAMPLE_COUNT = "sample-count"  # num_samples missing or not positive
    SHAPE = "shape"  # wrong number of tensors or a wrong shape
    DTYPE = "dtype"  # not float32
    NOT_FINITE = "not-finite"  # NaN or infinity
    DEVICE_FAILED = "device-failed"  # the device reported that local training failed


@dataclass(frozen=True)
class Rejection:
    """A rejected update: the reason and a message for people."""

    reason: RejectReason
    message: str


def check_update(
    tensors: Sequence[np.ndarray],
    expected: Sequence[tuple[str, tuple[int, ...]]],
    num_samples: int,
) -> Rejection | None:
    """Content checks: sample count, tensor count and shapes, float32, finite values."""
    if num_samples < 1:
        return Rejection(RejectReason.SAMPLE_COUNT, f"num_samples must be >= 1, got {num_samples}")
    if len(tensors) != len(expected):
        return Rejection(
            RejectReason.SHAPE, f"expected {len(expected)} tensors, got {len(tensors)}"
        )
    for tensor, (name, shape) in zip(tensors, expected, strict=True):
        if tuple(tensor.shape) != tuple(shape):
            return Rejection(
                RejectReason.SHAPE,
                f"{name} has shape {list(tensor.shape)}, expected {list(shape)}",
            )
        if tensor.dtype != np.float32:
            return Rejection(RejectReason.DTYPE, f"{name} is {tensor.dtype}, expected float32")
    for tensor, (name, _) in zip(tensors, expected, strict=True):
        if not np.isfinite(tensor).all():
            return Rejection(RejectReason.NOT_FINITE, f"{name} contains NaN or infinity")
    return None
