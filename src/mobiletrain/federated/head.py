"""The trainable head of on-device training and its weights file (numpy only).

Shared by the exporter (``compute/keras/ondevice.py``), the LiteRT runners
(``compute/ondevice.py``), the federated server and the device simulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class HeadSpec:
    """A dense classifier head: ``feature_dim`` → ``hidden``… (ReLU) → ``num_classes`` (softmax).

    Weights are ordered ``dense0_kernel, dense0_bias, dense1_kernel, ...``; kernels have shape
    ``(inputs, units)``. ``batch_size`` is the fixed batch of the train-step model.
    """

    feature_dim: int
    num_classes: int
    hidden: tuple[int, ...] = (64,)
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.feature_dim < 1 or self.num_classes < 2:
            raise ValueError("a head needs feature_dim >= 1 and num_classes >= 2")
        if any(h < 1 for h in self.hidden) or not 1 <= self.batch_size <= 4096:
            raise ValueError("hidden sizes must be >= 1 and batch_size in 1..4096")

    @property
    def layer_sizes(self) -> list[int]:
        """Widths from the features to the classes."""
        return [self.feature_dim, *self.hidden, self.num_classes]

    def weight_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(name, shape)`` of every weight tensor, in order."""
        sizes = self.layer_sizes
        out: list[tuple[str, tuple[int, ...]]] = []
        for i in range(len(sizes) - 1):
            out.append((f"dense{i}_kernel", (sizes[i], sizes[i + 1])))
            out.append((f"dense{i}_bias", (sizes[i + 1],)))
        return out

    def weight_names(self) -> list[str]:
        """Names of the weight tensors, in order."""
        return [name for name, _ in self.weight_shapes()]

    @property
    def num_parameters(self) -> int:
        """Total number of weights."""
        return sum(math.prod(shape) for _, shape in self.weight_shapes())

    def init_weights(self, seed: int = 0) -> list[np.ndarray]:
        """Glorot-uniform kernels and zero biases (what Keras' Dense starts from)."""
        rng = np.random.default_rng(seed)
        out = []
        for _, shape in self.weight_shapes():
            if len(shape) == 2:
                limit = math.sqrt(6.0 / (shape[0] + shape[1]))
                out.append(rng.uniform(-limit, limit, shape).astype(np.float32))
            else:
                out.append(np.zeros(shape, dtype=np.float32))
        return out

    def check_weights(self, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``weights`` as float32 arrays; ValueError when their number or shapes are wrong."""
        shapes = self.weight_shapes()
        if len(weights) != len(shapes):
            raise ValueError(f"expected {len(shapes)} weight tensors, got {len(weights)}")
        out = []
        for w, (name, shape) in zip(weights, shapes, strict=True):
            array = np.asarray(w, dtype=np.float32)
            if array.shape != shape:
                raise ValueError(f"{name} has shape {list(array.shape)}, expected {list(shape)}")
            out.append(array)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (manifest, session config)."""
        return {
            "feature_dim": self.feature_dim,
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            feature_dim=int(data["feature_dim"]),
            num_classes=int(data["num_classes"]),
            hidden=tuple(int(h) for h in data.get("hidden", ())),
            batch_size=int(data.get("batch_size", 32)),
        )


# --- head-weights file -------------------------------------------------------------------


def weights_to_bytes(weights: Sequence[np.ndarray]) -> bytes:
    """The ``head-weights`` file: every tensor as little-endian float32, row-major, in order.

    No header: the manifest's ``ondevice.weights`` lists names, shapes and byte offsets.
    """
    return b"".join(np.ascontiguousarray(w, dtype="<f4").tobytes() for w in weights)


def weights_from_bytes(
    data: bytes | bytearray, spec: HeadSpec, copy: bool = True
) -> list[np.ndarray]:
    """Inverse of :func:`weights_to_bytes`; ValueError when the size does not match.

    ``copy=False`` returns views of ``data`` (no copy on little-endian machines).
    """
    expected = 4 * spec.num_parameters
    if len(data) != expected:
        raise ValueError(f"head weights must be {expected} bytes, got {len(data)}")
    flat = np.frombuffer(data, dtype="<f4")
    out, start = [], 0
    for _, shape in spec.weight_shapes():
        n = math.prod(shape)
        out.append(flat[start : start + n].reshape(shape).astype(np.float32, copy=copy))
        start += n
    return out


def weights_layout(spec: HeadSpec) -> list[dict[str, Any]]:
    """``[{name, shape, dtype, offset, size}]`` of the head-weights file (bytes)."""
    out, offset = [], 0
    for name, shape in spec.weight_shapes():
        size = 4 * math.prod(shape)
        out.append(
            {"name": name, "shape": list(shape), "dtype": "float32", "offset": offset, "size": size}
        )
        offset += size
    return out
