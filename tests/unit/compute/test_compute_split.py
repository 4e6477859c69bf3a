"""Stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from mobiletrain.compute.split import stratified_split


def test_deterministic_for_a_seed_and_changes_with_it() -> None:
    labels = [i % 3 for i in range(60)]
    a = stratified_split(labels, 0.25, seed=1)
    b = stratified_split(labels, 0.25, seed=1)
    c = stratified_split(labels, 0.25, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_stratified_disjoint_and_complete() -> None:
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, val = stratified_split(labels, 0.2, seed=0)
    assert set(train).isdisjoint(val)
    assert sorted([*train, *val]) == list(range(100))
    y = np.asarray(labels)
    assert np.bincount(y[val]).tolist() == [10, 6, 4]
    assert np.bincount(y[train]).tolist() == [40, 24, 16]
    assert train.dtype == np.int64 and np.all(np.diff(train) > 0)


def test_small_classes() -> None:
    # Class 0: 1 sample (train only); class 1: 2 samples (1/1); class 2: 3 samples at 0.9.
    labels = [0, 1, 1, 2, 2, 2]
    train, val = stratified_split(labels, 0.9, seed=3)
    y = np.asarray(labels)
    assert np.bincount(y[train], minlength=3).tolist() == [1, 1, 1]
    assert np.bincount(y[val], minlength=3).tolist() == [0, 1, 2]
    # A tiny fraction still gives each class with >= 2 samples one validation sample.
    _, val = stratified_split(labels, 0.01, seed=3)
    assert np.bincount(y[val], minlength=3).tolist() == [0, 1, 1]


def test_empty_and_invalid() -> None:
    train, val = stratified_split([], 0.2, seed=0)
    assert train.size == 0 and val.size == 0
    with pytest.raises(ValueError):
        stratified_split([0, 1], 1.0, seed=0)
