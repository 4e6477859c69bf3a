"""Central differential privacy on the server: clip each update, add Gaussian noise.

Each delta is scaled down to L2 norm at most ``clip_norm`` before it is aggregated, which
bounds how far one device can move the aggregate (the strategy's ``sensitivity_factor`` times
the clip). Gaussian noise with standard deviation
``noise_multiplier * clip_norm * sensitivity_factor`` is then added to every coordinate of the
aggregated delta (the Gaussian mechanism of DP-FedAvg, McMahan et al. 2018); the standard
deviation used is reported with each round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mobiletrain.federated.strategy import Weights


def global_norm(tensors: Sequence[np.ndarray]) -> float:
    """L2 norm over all tensors together."""
    return float(np.sqrt(sum(float(np.sum(np.square(t, dtype=np.float64))) for t in tensors)))


def clip(delta: Sequence[np.ndarray], clip_norm: float) -> tuple[Weights, float, bool]:
    """``(clipped delta, original norm, was clipped)``; ``clip_norm`` 0 leaves it as is
    (and skips computing the norm, reported as 0)."""
    if clip_norm <= 0:
        return list(delta), 0.0, False
    norm = global_norm(delta)
    if norm <= clip_norm:
        return list(delta), norm, False
    factor = np.float32(clip_norm / norm)
    return [np.asarray(d * factor, dtype=np.float32) for d in delta], norm, True


def add_noise(delta: Sequence[np.ndarray], std: float, rng: np.random.Generator) -> Weights:
    """``delta`` plus independent N(0, std²) noise on every coordinate."""
    if std <= 0:
        return list(delta)
    return [(d + rng.normal(0.0, std, size=np.shape(d))).astype(np.float32) for d in delta]


def noise_std(clip_norm: float, noise_multiplier: float, sensitivity_factor: float) -> float:
    """The standard deviation of the noise for one round."""
    if clip_norm <= 0 or noise_multiplier <= 0:
        return 0.0
    return noise_multiplier * clip_norm * sensitivity_factor
