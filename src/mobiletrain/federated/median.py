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
    """Median over the buffered deltas."""

    def result(self) -> Weights:
        return [
            np.median(self.stacked(i), axis=0).astype(np.float32)
            for i in range(len(self.deltas[0]))
        ]


@register_strategy
class Median(Strategy):
    """Coordinate-wise median; sample counts are not used."""

    name = StrategyName.MEDIAN

    def aggregator(self) -> Aggregator:
        return MedianAggregator()
