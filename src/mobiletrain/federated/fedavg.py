"""FedAvg (McMahan et al. 2017): the mean of the updates weighted by sample count.

Each device claims how many samples it trained on; a claim above
``max_samples_per_device`` counts as the cap, so one device cannot outweigh the rest by
lying, and no update counts for more than ``max_weight_share`` of a round (see
:func:`~mobiletrain.federated.strategy.cap_weight_shares`). The sum is kept running as
updates arrive (float64), so server memory does not grow with the number of devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mobiletrain.federated.config import StrategyName
from mobiletrain.federated.strategy import Aggregator, Strategy, Weights, register_strategy


class RunningMean(Aggregator):
    """Weighted running sum of deltas."""

    def __init__(self) -> None:
        super().__init__()
        self._sum: list[np.ndarray] | None = None

    def _add(self, delta: Sequence[np.ndarray], weight: float, consume: bool) -> None:
        if self._sum is None:
            self._sum = [np.zeros(np.shape(d), dtype=np.float64) for d in delta]
        w = np.float32(weight)
        for acc, d in zip(self._sum, delta, strict=True):
            if consume:  # the caller's scratch: scaled in place, no temporary
                acc += np.multiply(d, w, out=d)
            else:
                acc += np.multiply(d, w, dtype=np.float32)  # one float32 temporary

    def result(self) -> Weights:
        assert self._sum is not None and self.total_weight > 0
        return [(acc / self.total_weight).astype(np.float32) for acc in self._sum]

    def sensitivity_factor(self) -> float:
        return self.max_weight / self.total_weight if self.total_weight else 1.0


@register_strategy
class FedAvg(Strategy):
    """Sample-weighted mean with a cap on the claimed count."""

    name = StrategyName.FEDAVG
    weighted = True

    def aggregator(self) -> Aggregator:
        return RunningMean()

    def weight_of(self, num_samples: int) -> float:
        return float(min(max(num_samples, 0), self.config.max_samples_per_device))
