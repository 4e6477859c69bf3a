"""On-device training files, run in LiteRT exactly as a phone runs them (no TensorFlow here).

``compute/keras/ondevice.py`` writes the files (it needs TensorFlow); this module holds what
the API process, the device simulator and the benchmarks need to use them:

* :class:`HeadSpec` — the trainable head (dense layers on top of frozen features) and the
  order and shapes of its weight tensors;
* the ``head-weights`` file format (:func:`weights_to_bytes` / :func:`weights_from_bytes`);
* :func:`patch_weights` — write new head weights into a file exported with placeholder
  weights (the classifier and the signature variant), a byte copy instead of a conversion;
* runners for the ``feature-extractor``, ``train-step`` and ``head-inference`` files.

The train-step model is stateless: the app feeds a batch, the current weights and the
learning rate and gets the loss and the new weights, so it needs only the interpreter's plain
multi-input ``run`` (tflite_flutter's ``runForMultipleInputs``), no signature runner, no
resource variables and no Flex delegate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from mobiletrain.compute.preprocess import normalize
from mobiletrain.core.types import InputSpec
from mobiletrain.federated.head import (
    HeadSpec,
    weights_from_bytes,
    weights_layout,
    weights_to_bytes,
)

__all__ = [
    "FeatureExtractor",
    "HeadInference",
    "HeadSpec",
    "PatchSite",
    "TrainStep",
    "find_patch_sites",
    "patch_weights",
    "weights_from_bytes",
    "weights_layout",
    "weights_to_bytes",
]

ONDEVICE_SCHEMA_VERSION = 1
"""Version of the ``ondevice`` section of the manifest."""

# Input and output names of the stateless train-step model, in positional order (the
# weight tensors follow, named after HeadSpec.weight_names()). The manifest lists the same.
TRAIN_STEP_DATA_INPUTS: tuple[str, ...] = ("x", "y", "mask", "lr", "mu")
TRAIN_STEP_LOSS_OUTPUT = "loss"
WEIGHT_PREFIX = "w_"
ANCHOR_PREFIX = "anchor_"
NEW_WEIGHT_PREFIX = "new_"
HEAD_INPUT = "features"
HEAD_OUTPUT = "probabilities"
EXTRACTOR_INPUT = "image"
EXTRACTOR_OUTPUT = "features"


# --- patching placeholder weights --------------------------------------------------------


@dataclass(frozen=True)
class PatchSite:
    """Where one weight tensor's bytes sit in an exported file.

    ``transposed``: the converter stored the kernel as ``(units, inputs)`` (TFLite's
    FULLY_CONNECTED layout), so it is written transposed.
    """

    weight: int
    offset: int
    transposed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"weight": self.weight, "offset": self.offset, "transposed": self.transposed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatchSite:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["weight"]), int(data["offset"]), bool(data.get("transposed", False)))


def find_patch_sites(data: bytes, placeholders: Sequence[np.ndarray]) -> list[PatchSite]:
    """Locate every placeholder tensor in ``data`` (as stored, or transposed).

    Each placeholder must be found exactly once; ValueError otherwise (then the file cannot be
    patched safely). Placeholders are random values, so a false match is practically impossible.
    """
    sites = []
    for i, w in enumerate(placeholders):
        candidates = [(np.asarray(w, dtype="<f4"), False)]
        if w.ndim == 2:
            candidates.append((np.asarray(w, dtype="<f4").T, True))
        found = []
        for array, transposed in candidates:
            needle = np.ascontiguousarray(array).tobytes()
            start = data.find(needle)
            while start != -1:
                found.append(PatchSite(i, start, transposed))
                start = data.find(needle, start + 1)
        if len(found) != 1:
            raise ValueError(f"placeholder weight {i} found {len(found)} times in the file")
        sites.append(found[0])
    return sites


def patch_weights(
    template: bytes, sites: Sequence[PatchSite], weights: Sequence[np.ndarray]
) -> bytes:
    """A copy of ``template`` with ``weights`` written at ``sites`` (same sizes, so no
    flatbuffer offset moves)."""
    out = bytearray(template)
    for site in sites:
        w = np.asarray(weights[site.weight], dtype="<f4")
        raw = np.ascontiguousarray(w.T if site.transposed else w).tobytes()
        if site.offset + len(raw) > len(out):
            raise ValueError("patch site outside the file")
        out[site.offset : site.offset + len(raw)] = raw
    return bytes(out)


# --- runners -----------------------------------------------------------------------------


def _interpreter(model_bytes: bytes, num_threads: int | None) -> Interpreter:
    interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class FeatureExtractor:
    """The ``feature-extractor`` file: normalised image ``(1, H, W, C)`` → features ``(1, F)``."""

    def __init__(self, model_bytes: bytes, spec: InputSpec, num_threads: int | None = 1) -> None:
        self.spec = spec
        self._interpreter = _interpreter(model_bytes, num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.feature_dim = int(self._output["shape"][-1])

    def features(self, images_uint8: np.ndarray) -> np.ndarray:
        """Features ``float32 (N, F)`` of ``uint8 (N, H, W, C)`` images, one at a time."""
        pixels = np.asarray(images_uint8, dtype=np.uint8)
        if pixels.ndim == 3:
            pixels = pixels[..., np.newaxis]
        out = np.empty((len(pixels), self.feature_dim), dtype=np.float32)
        for i in range(len(pixels)):
            self._interpreter.set_tensor(
                self._input["index"], normalize(pixels[i : i + 1], self.spec)
            )
            self._interpreter.invoke()
            out[i] = self._interpreter.get_tensor(self._output["index"]).reshape(-1)
        return out


class HeadInference:
    """The ``head-inference`` file: features and weights in, class probabilities out."""

    def __init__(self, model_bytes: bytes, head: HeadSpec, num_threads: int | None = 1) -> None:
        self.head = head
        self._interpreter = _interpreter(model_bytes, num_threads)
        self._inputs = self._interpreter.get_input_details()
        self._output = self._interpreter.get_output_details()[0]
        self._batch = int(self._inputs[0]["shape"][0])

    def predict(
        self, features: np.ndarray, weights: Sequence[np.ndarray], batch: int = 256
    ) -> np.ndarray:
        """Probabilities ``float32 (N, classes)``."""
        ws = self.head.check_weights(weights)
        x = np.asarray(features, dtype=np.float32)
        outputs = []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            if len(chunk) != self._batch:
                self._interpreter.resize_tensor_input(
                    self._inputs[0]["index"], [len(chunk), self.head.feature_dim], strict=True
                )
                self._interpreter.allocate_tensors()
                self._inputs = self._interpreter.get_input_details()
                self._output = self._interpreter.get_output_details()[0]
                self._batch = len(chunk)
            self._interpreter.set_tensor(self._inputs[0]["index"], chunk)
            for detail, w in zip(self._inputs[1:], ws, strict=True):
                self._interpreter.set_tensor(detail["index"], w)
            self._interpreter.invoke()
            outputs.append(self._interpreter.get_tensor(self._output["index"]))
        if not outputs:
            return np.zeros((0, self.head.num_classes), dtype=np.float32)
        return np.concatenate(outputs, axis=0)


@dataclass
class LocalTrainingResult:
    """What one round of local training produced."""

    weights: list[np.ndarray]
    num_samples: int
    loss: float
    steps: int
    losses: list[float] = field(default_factory=list)


class TrainStep:
    """The stateless ``train-step`` file: one SGD step on a fixed-size batch.

    Inputs, in order: ``x (B, F)`` float32 features, ``y (B,)`` int32 labels, ``mask (B,)``
    float32 (1 = real row, 0 = padding of a short last batch), ``lr (1,)``, ``mu (1,)``
    (FedProx proximal strength; 0 = plain SGD), the weights, then the anchor weights (the
    round's global weights, used only when ``mu > 0``). Outputs, in order: ``loss (1,)`` and
    the new weights.
    """

    def __init__(self, model_bytes: bytes, head: HeadSpec, num_threads: int | None = 1) -> None:
        self.head = head
        self._interpreter = _interpreter(model_bytes, num_threads)
        self._inputs = [d["index"] for d in self._interpreter.get_input_details()]
        self._outputs = [d["index"] for d in self._interpreter.get_output_details()]
        n = len(head.weight_shapes())
        expected_in, expected_out = len(TRAIN_STEP_DATA_INPUTS) + 2 * n, 1 + n
        if len(self._inputs) != expected_in or len(self._outputs) != expected_out:
            raise ValueError(
                f"train-step model has {len(self._inputs)} inputs and {len(self._outputs)} "
                f"outputs; the head needs {expected_in} and {expected_out}"
            )

    @property
    def batch_size(self) -> int:
        """The fixed batch size."""
        return self.head.batch_size

    def step(
        self,
        x: np.ndarray,
        y: np.ndarray,
        mask: np.ndarray,
        weights: Sequence[np.ndarray],
        lr: float,
        mu: float = 0.0,
        anchors: Sequence[np.ndarray] | None = None,
    ) -> tuple[float, list[np.ndarray]]:
        """One step; returns the batch loss and the new weights."""
        it = self._interpreter
        values: list[np.ndarray] = [
            np.asarray(x, dtype=np.float32),
            np.asarray(y, dtype=np.int32),
            np.asarray(mask, dtype=np.float32),
            np.array([lr], dtype=np.float32),
            np.array([mu], dtype=np.float32),
            *weights,
            *(anchors if anchors is not None else weights),
        ]
        for index, value in zip(self._inputs, values, strict=True):
            it.set_tensor(index, value)
        it.invoke()
        loss = float(it.get_tensor(self._outputs[0])[0])
        return loss, [it.get_tensor(i) for i in self._outputs[1:]]

    def fit(
        self,
        features: np.ndarray,
        labels: np.ndarray,
        weights: Sequence[np.ndarray],
        lr: float,
        epochs: int = 1,
        mu: float = 0.0,
        seed: int = 0,
    ) -> LocalTrainingResult:
        """``epochs`` passes of shuffled mini-batch SGD over local data (what an app does)."""
        ws = self.head.check_weights(weights)
        anchors = [w.copy() for w in ws]
        n, b = len(features), self.batch_size
        rng = np.random.default_rng(seed)
        losses: list[float] = []
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, b):
                idx = order[start : start + b]
                x = np.zeros((b, self.head.feature_dim), dtype=np.float32)
                y = np.zeros(b, dtype=np.int32)
                mask = np.zeros(b, dtype=np.float32)
                x[: len(idx)] = features[idx]
                y[: len(idx)] = labels[idx]
                mask[: len(idx)] = 1.0
                loss, ws = self.step(x, y, mask, ws, lr, mu, anchors)
                losses.append(loss)
        mean = float(np.mean(losses)) if losses else float("nan")
        return LocalTrainingResult(ws, n, mean, len(losses), losses)


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (0 for no samples)."""
    if len(labels) == 0:
        return 0.0
    return float(np.mean(np.argmax(probabilities, axis=1) == np.asarray(labels)))
