"""Coordinate-wise median (Yin et al. 2018): each weight moves by the median of the devices'
changes, so a minority of arbitrary (Byzantine) updates cannot drag it far."""

from __future__ import annotations

import numpy as np

from mobiletrain.federated.config import StrategyName
from mobiletrain.federated.strategy import (
    Aggregator,
    BufferingAggregator,
    Strategy,
    Weights,
    register_strategy,
)


class MedianAggregator(BufferingAggregator):
    """Median over the spilled deltas, a block of coordinates at a time."""

    def result(self) -> Weights:
        return self.combine(lambda stacked: np.median(stacked, axis=0).astype(np.float32))


@register_strategy
class Median(Strategy):
    """Coordinate-wise median; sample counts are not used."""

    name = StrategyName.MEDIAN

    def aggregator(self) -> Aggregator:
        return MedianAggregator()
