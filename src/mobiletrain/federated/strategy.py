"""The strategy interface: how a round's updates become one new global model.

Updates are *deltas* (device weights minus the round's global weights). A strategy hands out
an :class:`Aggregator` per round; the server adds each accepted (and possibly clipped) delta
as it arrives and asks for the combined delta when the round closes.
"""

from __future__ import annotations

import abc
import importlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
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

    def add(self, delta: Sequence[np.ndarray], weight: float, consume: bool = False) -> None:
        """Add one accepted delta with its (already capped) weight. ``consume``: the arrays
        are the caller's own scratch (float32, writable, not used after this call), so the
        aggregator may scale them in place instead of allocating a temporary per update."""
        self.count += 1
        self.total_weight += weight
        self.max_weight = max(self.max_weight, weight)
        self._add(delta, weight, consume)

    @abc.abstractmethod
    def _add(self, delta: Sequence[np.ndarray], weight: float, consume: bool) -> None: ...

    @abc.abstractmethod
    def result(self) -> Weights:
        """The combined delta (float32); only called with at least one delta added."""

    def sensitivity_factor(self) -> float:
        """How much one device can move the result per unit of clipped norm (for the noise)."""
        return 1.0 / max(self.count, 1)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free what the aggregator holds outside memory (a spill file); idempotent."""


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


SPILL_BLOCK_BYTES = 32 * 1024 * 1024
"""Most bytes of deltas a :class:`BufferingAggregator` holds in memory at once when it combines
them (one block of coordinates of every delta)."""


class BufferingAggregator(Aggregator):
    """Keeps every delta, as coordinate-wise statistics need them all, on disk rather than in
    memory: each delta is appended to an unlinked temporary file as it arrives, and
    :meth:`blocks` reads them back one block of coordinates at a time. Memory is bounded by
    :data:`SPILL_BLOCK_BYTES` (plus the statistic's own temporaries, about as much again),
    whatever the number of devices and the model's size; the file holds ``count × model``
    bytes until :meth:`close`. (Holding them in memory took 50 × 10 MB for a 10 MB model and
    50 devices, and stacking them for the median as much again.)

    The file is this coordinator's scratch, not a record: a replica taking the session over
    rebuilds the round from the stored updates (blobs), as for every strategy.
    """

    def __init__(self) -> None:
        super().__init__()
        self._file: Any = None
        self._shapes: list[tuple[int, ...]] = []
        self._row_bytes = 0

    def _add(self, delta: Sequence[np.ndarray], weight: float, consume: bool) -> None:
        arrays = [np.ascontiguousarray(d, dtype=np.float32) for d in delta]
        if self._file is None:
            # Closed by close() (or when the aggregator goes), not within one call.
            self._file = tempfile.TemporaryFile(prefix="mobiletrain-federated-")  # noqa: SIM115
            self._shapes = [a.shape for a in arrays]
            self._row_bytes = sum(a.nbytes for a in arrays)
        elif [a.shape for a in arrays] != self._shapes:
            raise ValueError("every delta of a round has the same shapes")
        fd = self._file.fileno()
        offset = (self.count - 1) * self._row_bytes  # count is already incremented
        for a in arrays:
            view = memoryview(a.data).cast("B")
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written

    @property
    def tensors(self) -> int:
        """How many tensors each delta has (0 before the first)."""
        return len(self._shapes)

    def blocks(self, index: int) -> Iterator[tuple[int, np.ndarray]]:
        """Tensor ``index`` of every delta, flattened, one block of coordinates at a time:
        ``(first coordinate, array of shape (count, block))``."""
        assert self._file is not None
        shape = self._shapes[index]
        size = math.prod(shape)
        base = 4 * sum(math.prod(s) for s in self._shapes[:index])
        block = max(1024, SPILL_BLOCK_BYTES // (4 * max(self.count, 1)))
        fd = self._file.fileno()
        for start in range(0, size, block):
            stop = min(size, start + block)
            out = np.empty((self.count, stop - start), dtype=np.float32)
            for row in range(self.count):
                target = memoryview(out[row].data).cast("B")
                offset = row * self._row_bytes + base + 4 * start
                while target:
                    got = os.preadv(fd, [target], offset)
                    if got <= 0:
                        raise OSError("the spill file of a round ended early")
                    target, offset = target[got:], offset + got
            yield start, out

    def combine(self, statistic: Callable[[np.ndarray], np.ndarray]) -> Weights:
        """``statistic`` (over axis 0 of a ``(count, block)`` array) of every coordinate."""
        out = []
        for index, shape in enumerate(self._shapes):
            flat = np.empty(math.prod(shape), dtype=np.float32)
            for start, stacked in self.blocks(index):
                flat[start : start + stacked.shape[1]] = statistic(stacked)
            out.append(flat.reshape(shape))
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self) -> None:
        self.close()
