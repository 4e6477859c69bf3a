"""Coordinate-wise trimmed mean (Yin et al. 2018): per weight, drop the ``trim_fraction``
largest and smallest changes and average the rest."""

from __future__ import annotations

import math

import numpy as np

from mobiletrain.federated.config import StrategyName
from mobiletrain.federated.strategy import (
    Aggregator,
    BufferingAggregator,
    Strategy,
    Weights,
    register_strategy,
)


class TrimmedMeanAggregator(BufferingAggregator):
    """Trimmed mean over the buffered deltas."""

    def __init__(self, trim_fraction: float) -> None:
        super().__init__()
        self.trim_fraction = trim_fraction

    def trimmed(self) -> int:
        """How many values are dropped at each end."""
        n = self.count
        k = math.floor(self.trim_fraction * n)
        return min(k, (n - 1) // 2)  # keep at least one value

    def result(self) -> Weights:
        k, n = self.trimmed(), self.count

        def trimmed_mean(stacked: np.ndarray) -> np.ndarray:
            ordered = np.sort(stacked, axis=0)
            return ordered[k : n - k].mean(axis=0).astype(np.float32)

        return self.combine(trimmed_mean)

    def sensitivity_factor(self) -> float:
        return 1.0 / max(self.count - 2 * self.trimmed(), 1)


@register_strategy
class TrimmedMean(Strategy):
    """Coordinate-wise trimmed mean; sample counts are not used."""

    name = StrategyName.TRIMMED_MEAN

    def aggregator(self) -> Aggregator:
        return TrimmedMeanAggregator(self.config.trim_fraction)
