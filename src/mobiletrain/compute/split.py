"""Deterministic stratified train/validation split (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(
    labels: Sequence[int], validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(train_idx, val_idx)``, class by class.

    Each class sends ``round(n * validation_fraction)`` samples to validation, clamped so
    that a class keeps at least one training sample and, when it has two or more samples,
    gives at least one to validation. The result depends only on ``labels``, the fraction
    and ``seed``; both index arrays are sorted ``int64``.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    # np.unique sorts the classes, so the rng is consumed in a fixed order.
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        members = members[rng.permutation(members.size)]
        n = members.size
        n_val = 0 if n < 2 else min(max(round(n * validation_fraction), 1), n - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    empty = np.empty(0, dtype=np.int64)
    train_idx = np.sort(np.concatenate(train)) if train else empty
    val_idx = np.sort(np.concatenate(val)) if val else empty
    return train_idx.astype(np.int64), val_idx.astype(np.int64)
