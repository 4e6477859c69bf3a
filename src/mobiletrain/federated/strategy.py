"""The strategy interface: how a round's updates become one new global model.

Updates are *deltas* (device weights minus the round's global weights). A strategy hands out
an :class:`Aggregator` per round; the server adds each accepted (and possibly clipped) delta
as it arrives and asks for the combined delta when the round closes.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.federated.config import FederatedConfig, StrategyName

Weights = list[np.ndarray]


class Aggregator(abc.ABC):
    """Combines the deltas of one round."""

    def __init__(self) -> None:
        self.count = 0
        self.total_weight = 0.0
        self.max_weight = 0.0

    def add(self, delta: Sequence[np.ndarray], weight: float) -> None:
        """Add one accepted delta with its (already capped) weight."""
        self.count += 1
        self.total_weight += weight
        self.max_weight = max(self.max_weight, weight)
        self._add(delta, weight)

    @abc.abstractmethod
    def _add(self, delta: Sequence[np.ndarray], weight: float) -> None: ...

    @abc.abstractmethod
    def result(self) -> Weights:
        """The combined delta (float32); only called with at least one delta added."""

    def sensitivity_factor(self) -> float:
        """How much one device can move the result per unit of clipped norm (for the noise)."""
        return 1.0 / max(self.count, 1)


class Strategy(abc.ABC):
    """A named way to aggregate, plus what devices must know to train for it."""

    name: StrategyName
    weighted = False
    """True when updates count by their weight (then no client's share may pass the cap)."""

    def __init__(self, config: FederatedConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def aggregator(self) -> Aggregator:
        """A fresh aggregator for one round."""

    def weight_of(self, num_samples: int) -> float:
        """The weight of an update that claims ``num_samples`` (1 unless overridden)."""
        return 1.0

    def device_settings(self) -> dict[str, Any]:
        """Extra settings sent to devices with each assignment."""
        return {"mu": 0.0}


def cap_weight_shares(weights: Sequence[float], max_share: float) -> list[float]:
    """Lower the largest weights so that none is more than ``max_share`` of the total.

    The rule (documented in docs/federated.md): every weight becomes ``min(w, T)`` with the
    single threshold ``T`` at which the capped largest weight is exactly ``max_share`` of
    the capped total ("water-filling"); weights under ``T`` are unchanged. With ``n``
    updates the share cannot go below ``1/n`` (all equal), so the effective cap is
    ``max(max_share, 1/n)``. One client claiming 10⁹ samples against a few honest ones
    therefore counts as much as ``max_share`` of the round, never more.
    """
    n = len(weights)
    if n == 0:
        return []
    share = max(max_share, 1.0 / n)
    if max(weights) <= share * sum(weights):
        return [float(w) for w in weights]
    order = sorted(weights, reverse=True)
    threshold = float(order[0])
    for k in range(1, n + 1):
        # The k largest are capped at T; T = share * (k*T + rest)  =>  T = share*rest/(1-share*k)
        rest = float(sum(order[k:]))
        if share * k >= 1.0:
            threshold = float(order[k - 1]) if k == n else threshold
            break
        candidate = share * rest / (1.0 - share * k)
        if candidate <= order[k - 1] and (k == n or candidate >= order[k]):
            threshold = candidate
            break
    return [float(min(w, threshold)) for w in weights]


_REGISTRY: dict[StrategyName, type[Strategy]] = {}
"""Strategy classes by name; each implementation module registers its class on import."""

_BUILTIN_MODULES: dict[StrategyName, str] = {
    StrategyName.FEDAVG: "mobiletrain.federated.fedavg",
    StrategyName.FEDPROX: "mobiletrain.federated.fedprox",
    StrategyName.MEDIAN: "mobiletrain.federated.median",
    StrategyName.TRIMMED_MEAN: "mobiletrain.federated.trimmed_mean",
}
"""Where the built-in strategies live: imported on first use, so this interface module does
not import its own implementations (they import it)."""

StrategyT = TypeVar("StrategyT", bound=Strategy)


def register_strategy(cls: type[StrategyT]) -> type[StrategyT]:
    """Class decorator: make ``cls`` the strategy for ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def make_strategy(config: FederatedConfig) -> Strategy:
    """The strategy named by ``config.strategy``."""
    cls = _REGISTRY.get(config.strategy)
    if cls is None:
        module = _BUILTIN_MODULES.get(config.strategy)
        if module is not None:
            importlib.import_module(module)  # registers the class
        cls = _REGISTRY.get(config.strategy)
    if cls is None:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, f"unknown federated strategy {config.strategy!r}"
        )
    return cls(config)


class BufferingAggregator(Aggregator):
    """Keeps every delta (coordinate-wise statistics need them all): memory grows with the
    number of devices, unlike FedAvg's running sum."""

    def __init__(self) -> None:
        super().__init__()
        self.deltas: list[Weights] = []

    def _add(self, delta: Sequence[np.ndarray], weight: float) -> None:
        self.deltas.append([np.asarray(d, dtype=np.float32) for d in delta])

    def stacked(self, index: int) -> np.ndarray:
        """Tensor ``index`` of every delta, stacked on a new first axis."""
        return np.stack([d[index] for d in self.deltas])
