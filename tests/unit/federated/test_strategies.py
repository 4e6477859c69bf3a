"""Strategies, clipping and noise on plain numpy updates."""

from __future__ import annotations

import numpy as np
import pytest

from mobiletrain.federated.config import FederatedConfig, StrategyName
from mobiletrain.federated.privacy import add_noise, clip, global_norm, noise_std
from mobiletrain.federated.strategy import Aggregator, make_strategy
from mobiletrain.federated.validation import RejectReason, check_update

SHAPES = [("kernel", (3, 2)), ("bias", (2,))]


def delta(value: float) -> list[np.ndarray]:
    return [np.full(s, value, np.float32) for _, s in SHAPES]


def aggregate(name: StrategyName, updates: list[tuple[list[np.ndarray], int]], **cfg: object):
    strategy = make_strategy(FederatedConfig(strategy=name, **cfg))  # type: ignore[arg-type]
    agg: Aggregator = strategy.aggregator()
    for d, n in updates:
        agg.add(d, strategy.weight_of(n))
    return agg.result()


def test_fedavg_weights_by_sample_count() -> None:
    out = aggregate(StrategyName.FEDAVG, [(delta(1.0), 10), (delta(4.0), 30)])
    np.testing.assert_allclose(out[0], 3.25)  # (10*1 + 30*4) / 40
    assert out[0].dtype == np.float32 and out[1].shape == (2,)


def test_fedavg_caps_the_claimed_count() -> None:
    honest = [(delta(0.0), 100) for _ in range(3)]
    liar = (delta(1.0), 1_000_000)
    out = aggregate(StrategyName.FEDAVG, [*honest, liar], max_samples_per_device=100)
    np.testing.assert_allclose(out[0], 0.25)  # the liar counts as 100 samples, not a million
    uncapped = aggregate(StrategyName.FEDAVG, [*honest, liar], max_samples_per_device=10**9)
    assert uncapped[0][0, 0] > 0.99


def test_fedprox_aggregates_like_fedavg_and_tells_devices_mu() -> None:
    updates = [(delta(1.0), 10), (delta(4.0), 30)]
    prox = aggregate(StrategyName.FEDPROX, updates)
    np.testing.assert_allclose(prox[0], aggregate(StrategyName.FEDAVG, updates)[0])
    config = FederatedConfig(strategy=StrategyName.FEDPROX, proximal_mu=0.3)
    assert make_strategy(config).device_settings() == {"mu": 0.3}
    assert config.device_mu == 0.3
    assert FederatedConfig(proximal_mu=0.3).device_mu == 0.0
    assert make_strategy(FederatedConfig()).device_settings() == {"mu": 0.0}


def byzantine_updates(rng: np.random.Generator) -> list[tuple[list[np.ndarray], int]]:
    honest = [
        ([rng.normal(1.0, 0.1, s).astype(np.float32) for _, s in SHAPES], 50) for _ in range(9)
    ]
    attacker = ([np.full(s, 1e6, np.float32) for _, s in SHAPES], 50)
    return [*honest, attacker]


@pytest.mark.parametrize("name", [StrategyName.MEDIAN, StrategyName.TRIMMED_MEAN])
def test_robust_strategies_ignore_a_scaled_update(name: StrategyName) -> None:
    updates = byzantine_updates(np.random.default_rng(0))
    out = aggregate(name, updates, trim_fraction=0.2)
    assert np.all(np.abs(out[0] - 1.0) < 0.2), out[0]
    damaged = aggregate(StrategyName.FEDAVG, updates)
    assert np.all(damaged[0] > 1e4)


def test_median_and_trimmed_mean_values() -> None:
    updates = [(delta(v), 1) for v in (1.0, 2.0, 3.0, 4.0, 100.0)]
    np.testing.assert_allclose(aggregate(StrategyName.MEDIAN, updates)[0], 3.0)
    # trim 1 of 5 at each end: mean of 2, 3, 4
    np.testing.assert_allclose(
        aggregate(StrategyName.TRIMMED_MEAN, updates, trim_fraction=0.2)[0], 3.0
    )
    # two updates: trimming keeps at least one value per side
    two = [(delta(1.0), 1), (delta(3.0), 1)]
    np.testing.assert_allclose(aggregate(StrategyName.TRIMMED_MEAN, two, trim_fraction=0.4)[0], 2.0)


def test_clipping_bounds_the_norm() -> None:
    big = delta(10.0)
    clipped, norm, was = clip(big, 1.0)
    assert was and norm == pytest.approx(10.0 * np.sqrt(8))
    assert global_norm(clipped) == pytest.approx(1.0, rel=1e-5)
    small = delta(0.01)
    same, _, was = clip(small, 1.0)
    assert not was and same[0] is small[0]
    _, _, was = clip(big, 0.0)
    assert not was


def test_noise_has_the_reported_scale() -> None:
    std = noise_std(clip_norm=2.0, noise_multiplier=1.5, sensitivity_factor=0.1)
    assert std == pytest.approx(0.3)
    assert noise_std(0.0, 1.0, 0.1) == 0.0
    zeros = [np.zeros((200, 100), np.float32)]
    noisy = add_noise(zeros, std, np.random.default_rng(1))
    assert noisy[0].dtype == np.float32
    assert np.std(noisy[0]) == pytest.approx(std, rel=0.05)
    assert add_noise(zeros, 0.0, np.random.default_rng(1))[0] is zeros[0]


def test_sensitivity_factor_per_strategy() -> None:
    strategy = make_strategy(FederatedConfig())
    agg = strategy.aggregator()
    for n in (10, 30, 60):
        agg.add(delta(1.0), strategy.weight_of(n))
    assert agg.sensitivity_factor() == pytest.approx(0.6)  # the largest weight share
    med = make_strategy(FederatedConfig(strategy=StrategyName.MEDIAN)).aggregator()
    for _ in range(4):
        med.add(delta(1.0), 1.0)
    assert med.sensitivity_factor() == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("tensors", "num_samples", "reason"),
    [
        (delta(1.0), 0, RejectReason.SAMPLE_COUNT),
        (delta(1.0)[:1], 5, RejectReason.SHAPE),
        ([np.zeros((2, 3), np.float32), np.zeros(2, np.float32)], 5, RejectReason.SHAPE),
        ([np.zeros((3, 2), np.float64), np.zeros(2, np.float32)], 5, RejectReason.DTYPE),
        (
            [np.full((3, 2), np.nan, np.float32), np.zeros(2, np.float32)],
            5,
            RejectReason.NOT_FINITE,
        ),
        (
            [np.zeros((3, 2), np.float32), np.array([0, np.inf], np.float32)],
            5,
            RejectReason.NOT_FINITE,
        ),
    ],
)
def test_update_content_checks(
    tensors: list[np.ndarray], num_samples: int, reason: RejectReason
) -> None:
    rejection = check_update(tensors, SHAPES, num_samples)
    assert rejection is not None and rejection.reason is reason
    assert rejection.message


def test_a_good_update_passes() -> None:
    assert check_update(delta(0.5), SHAPES, 3) is None
