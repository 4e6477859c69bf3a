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

NORM_BLOCK = 1 << 18
"""Values squared at once by :func:`global_norm` (a 2 MiB float64 temporary, whatever the
model's size: squaring a 10 MB update whole made a 20 MB one per update)."""


def global_norm(tensors: Sequence[np.ndarray]) -> float:
    """L2 norm over all tensors together (the squares are summed in float64)."""
    total = 0.0
    for tensor in tensors:
        flat = np.asarray(tensor).reshape(-1)
        for start in range(0, flat.size, NORM_BLOCK):
            block = flat[start : start + NORM_BLOCK].astype(np.float64)
            total += float(np.dot(block, block))
    return float(np.sqrt(total))


def clip(
    delta: Sequence[np.ndarray], clip_norm: float, in_place: bool = False
) -> tuple[Weights, float, bool]:
    """``(clipped delta, original norm, was clipped)``; ``clip_norm`` 0 leaves it as is
    (and skips computing the norm, reported as 0). ``in_place``: scale the (float32, writable)
    arrays of ``delta`` themselves rather than copies (the same values)."""
    if clip_norm <= 0:
        return list(delta), 0.0, False
    norm = global_norm(delta)
    if norm <= clip_norm:
        return list(delta), norm, False
    factor = np.float32(clip_norm / norm)
    if in_place:
        for d in delta:
            np.multiply(d, factor, out=d)
        return list(delta), norm, True
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
