"""Run and inspect exported .tflite files with LiteRT (no TensorFlow import).

Used by the trainer to evaluate every export exactly like a phone would run it, and by the
API process to read the manifest embedded in a model file.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from flatbuffers import encode, number_types, packer, table

from mobiletrain.compute.metrics import classification_report, cross_entropy
from mobiletrain.compute.preprocess import normalize
from mobiletrain.compute.protocol import MANIFEST_METADATA_NAME
from mobiletrain.core.types import InputSpec

# Largest batch fed at once to a model whose batch dimension is dynamic.
_MAX_BATCH = 64


def _tensor_summary(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    summary: dict[str, Any] = {
        "name": str(detail.get("name", "")),
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(v) for v in detail["shape"]],
        "quantization": None,
    }
    if scale:
        summary["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return summary


class LiteRTClassifier:
    """A loaded .tflite classifier of any task kind: float32 model input in, probabilities out.

    Quantised (uint8/int8) inputs get the float input quantised with the input tensor's scale
    and zero point, quantised outputs are dequantised, exactly as an app does it.
    """

    def __init__(self, model_bytes: bytes, num_threads: int | None = None) -> None:
        self._interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic_batch = int(signature[0]) == -1

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The input shape without the batch dimension."""
        return tuple(int(v) for v in self._input["shape"][1:])

    def input_details(self) -> dict[str, Any]:
        """``{name, dtype, shape, quantization: {scale, zero_point} | None}`` of the input."""
        return _tensor_summary(self._input)

    def output_details(self) -> dict[str, Any]:
        """``{name, dtype, shape, quantization: {scale, zero_point} | None}`` of the output."""
        return _tensor_summary(self._output)

    def _quantize_input(self, values: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype.kind == "f":
            return values.astype(dtype)
        scale, zero_point = self._input["quantization"]
        if not scale:
            raise ValueError(f"integer input of dtype {dtype.name} has no quantization scale")
        info = np.iinfo(dtype)
        quantized = np.round(values / np.float32(scale)) + zero_point
        clipped: np.ndarray = np.clip(quantized, info.min, info.max)
        return clipped.astype(dtype)

    def _dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        if np.dtype(raw.dtype).kind == "f":
            return raw.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return ((raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
            np.float32
        )

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        index = self._input["index"]
        if self._dynamic_batch and int(self._input["shape"][0]) != len(chunk):
            self._interpreter.resize_tensor_input(index, list(chunk.shape), strict=True)
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
        self._interpreter.set_tensor(index, chunk)
        self._interpreter.invoke()
        # get_tensor copies, so the result survives the next invoke.
        return self._dequantize_output(self._interpreter.get_tensor(self._output["index"]))

    def predict(self, model_input: np.ndarray) -> np.ndarray:
        """Class probabilities ``float32 (N, classes)`` for float32 model input ``(N, ...)``."""
        values = np.asarray(model_input, dtype=np.float32)
        if values.shape[1:] != self.example_shape:
            raise ValueError(
                f"input of shape {list(values.shape[1:])} does not match the model's "
                f"{list(self.example_shape)}"
            )
        step = _MAX_BATCH if self._dynamic_batch else int(self._input["shape"][0])
        outputs = [
            self._run(self._quantize_input(values[start : start + step]))
            for start in range(0, len(values), step)
        ]
        if not outputs:
            return np.zeros((0, int(self._output["shape"][-1])), dtype=np.float32)
        return np.concatenate(outputs, axis=0).reshape(len(values), -1)


class LiteRTModel(LiteRTClassifier):
    """A loaded .tflite image classifier that takes ``uint8`` images and returns probabilities.

    Float models get the pixels normalised per ``spec``; quantised inputs get the normalised
    value quantised (see :class:`LiteRTClassifier`).
    """

    def __init__(self, model_bytes: bytes, spec: InputSpec, num_threads: int | None = None) -> None:
        super().__init__(model_bytes, num_threads)
        self.spec = spec
        expected = (spec.height, spec.width, spec.channels)
        if self.example_shape != expected:
            raise ValueError(
                f"model input shape {list(self._input['shape'])} does not match spec {expected}"
            )

    def predict_uint8(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``float32 (N, classes)`` for ``uint8 (N, H, W, C)`` images."""
        pixels = np.asarray(batch, dtype=np.uint8)
        if pixels.ndim == 3:
            pixels = pixels[..., np.newaxis]
        return self.predict(normalize(pixels, self.spec))


def predict_samples(model_bytes: bytes, spec: InputSpec, samples: Sequence[bytes]) -> np.ndarray:
    """Probabilities ``float32 (len(samples), classes)`` for stored samples of any task kind.

    Each sample is decoded by its kind exactly as training decoded it; a sample that gives
    several examples (sensor windows, split audio clips) gets the mean of their
    probabilities. Used by the release gate and server-side prediction.
    """
    from mobiletrain.tasks import kind as task_kind

    kind = task_kind(spec.task)
    model = LiteRTClassifier(model_bytes)
    rows = []
    for data in samples:
        probabilities = model.predict(kind.model_input(kind.decode_examples(data, spec), spec))
        rows.append(probabilities.mean(axis=0))
    if not rows:
        return np.zeros((0, int(model.output_details()["shape"][-1])), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def evaluate(
    model_bytes: bytes,
    spec: InputSpec,
    images_uint8: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    num_classes: int,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run a .tflite model on labelled images in LiteRT and report its quality.

    Returns :func:`~mobiletrain.compute.metrics.classification_report`'s dict plus
    ``loss`` (cross-entropy of the output probabilities) and ``size_bytes``.
    """
    model = LiteRTModel(model_bytes, spec)
    probabilities = model.predict_uint8(images_uint8)
    y_true = np.asarray(labels, dtype=np.int64)
    report = classification_report(y_true, probabilities.argmax(axis=1), num_classes, label_names)
    report["loss"] = cross_entropy(probabilities, y_true)
    report["size_bytes"] = len(model_bytes)
    return report


# --- Minimal TFLite flatbuffer reader ----------------------------------------------------
# Field slots from tensorflow/compiler/mlir/lite/schema/schema.fbs. A table's vtable entry for
# slot n sits at byte offset 4 + 2 * n.
_MODEL_OPERATOR_CODES = 4 + 2 * 1
_MODEL_BUFFERS = 4 + 2 * 4
_MODEL_METADATA = 4 + 2 * 6
_OPCODE_CUSTOM_CODE = 4 + 2 * 1
_OPCODE_BUILTIN_CODE = 4 + 2 * 3
_OPCODE_DEPRECATED_BUILTIN_CODE = 4 + 2 * 0
_METADATA_NAME = 4 + 2 * 0
_METADATA_BUFFER = 4 + 2 * 1
_BUFFER_DATA = 4 + 2 * 0
_BUFFER_OFFSET = 4 + 2 * 1
_BUFFER_SIZE = 4 + 2 * 2
_BUILTIN_CUSTOM = 32  # BuiltinOperator.CUSTOM
_FILE_IDENTIFIER = b"TFL3"


def _model_table(data: bytes) -> table.Table:
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ValueError("not a TFLite flatbuffer (missing TFL3 identifier)")
    return table.Table(data, encode.Get(packer.uoffset, data, 0))


def _vector_tables(parent: table.Table, slot: int) -> list[table.Table]:
    offset = parent.Offset(slot)
    if not offset:
        return []
    start = parent.Vector(offset)
    return [
        table.Table(parent.Bytes, parent.Indirect(start + 4 * i))
        for i in range(parent.VectorLen(offset))
    ]


def _string(tab: table.Table, slot: int) -> str | None:
    offset = tab.Offset(slot)
    return tab.String(offset + tab.Pos).decode("utf-8") if offset else None


def _scalar(tab: table.Table, slot: int, flags: Any, default: int = 0) -> int:
    offset = tab.Offset(slot)
    return int(tab.Get(flags, offset + tab.Pos)) if offset else default


def _buffer_bytes(data: bytes, buffer: table.Table) -> bytes:
    offset = buffer.Offset(_BUFFER_DATA)
    if offset:
        start = buffer.Vector(offset)
        return bytes(data[start : start + buffer.VectorLen(offset)])
    # Models over 2 GB keep buffers after the flatbuffer, addressed from the file start.
    external = _scalar(buffer, _BUFFER_OFFSET, number_types.Uint64Flags)
    size = _scalar(buffer, _BUFFER_SIZE, number_types.Uint64Flags)
    return bytes(data[external : external + size]) if external > 1 else b""


def read_tflite_metadata(tflite_bytes: bytes) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a .tflite file as ``{name: buffer bytes}``.

    Raises ``ValueError`` when the bytes are not a TFLite flatbuffer.
    """
    data = bytes(tflite_bytes)
    model = _model_table(data)
    try:
        buffers = _vector_tables(model, _MODEL_BUFFERS)
        entries: dict[str, bytes] = {}
        for meta in _vector_tables(model, _MODEL_METADATA):
            name = _string(meta, _METADATA_NAME)
            index = _scalar(meta, _METADATA_BUFFER, number_types.Uint32Flags)
            if name is not None and index < len(buffers):
                entries[name] = _buffer_bytes(data, buffers[index])
    except (IndexError, struct.error) as exc:  # offsets pointing outside a truncated file
        raise ValueError(f"corrupt TFLite flatbuffer: {exc}") from None
    return entries


def read_embedded_manifest(tflite_bytes: bytes) -> dict[str, Any] | None:
    """Return the manifest stored under ``mobiletrain_manifest`` in a .tflite file, or ``None``.

    Raises ``ValueError`` when the bytes are not a TFLite file or the entry is not JSON.
    """
    raw = read_tflite_metadata(tflite_bytes).get(MANIFEST_METADATA_NAME)
    if raw is None:
        return None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"embedded manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError("embedded manifest is not a JSON object")
    return manifest


def custom_op_names(tflite_bytes: bytes) -> list[str]:
    """Names of the non-builtin (custom or Flex) operators a .tflite file uses.

    An empty list means every operator is a TFLite builtin, so the stock runtime on a phone
    (tflite_flutter / LiteRT without Select TF ops) can run it.
    """
    data = bytes(tflite_bytes)
    model = _model_table(data)
    names: list[str] = []
    try:
        for code in _vector_tables(model, _MODEL_OPERATOR_CODES):
            # builtin_code replaced the int8 deprecated_builtin_code at 127; take the larger.
            builtin = max(
                _scalar(code, _OPCODE_BUILTIN_CODE, number_types.Int32Flags),
                _scalar(code, _OPCODE_DEPRECATED_BUILTIN_CODE, number_types.Int8Flags),
            )
            if builtin == _BUILTIN_CUSTOM:
                names.append(_string(code, _OPCODE_CUSTOM_CODE) or "")
    except (IndexError, struct.error) as exc:
        raise ValueError(f"corrupt TFLite flatbuffer: {exc}") from None
    return sorted(set(names))
