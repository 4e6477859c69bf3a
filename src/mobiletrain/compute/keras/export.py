"""Export a trained Keras classifier to .keras and to TFLite files that phones can run.

TFLite conversion goes through a SavedModel written with ``keras.export.ExportArchive``
(Keras 3 models do not convert reliably with ``TFLiteConverter.from_keras_model`` or a bare
concrete function: their variables stay resource variables). The serving endpoint is
``lambda x: model(x, training=False)`` with a fixed batch-1 input signature, which every
mobile delegate supports. Only builtin TFLite ops are allowed (never SELECT_TF_OPS), so the
stock tflite_flutter / LiteRT runtime can run every file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.protocol import MANIFEST_METADATA_NAME
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import ModelFormat

# How many training images calibrate the full-integer quantisation.
REPRESENTATIVE_SAMPLES = 200
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def export_keras(model: keras.Model) -> bytes:
    """Serialise the model as a ``.keras`` file, without optimizer state (inference only)."""
    # A fresh functional model over the same layers is uncompiled, so the optimizer state
    # (2x the weights with Adam) stays out of the file; clone_model would copy it.
    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    with tempfile.TemporaryDirectory(prefix="mobiletrain-keras-") as tmp:
        path = Path(tmp) / "model.keras"
        inference.save(path)
        return path.read_bytes()


def write_saved_model(model: keras.Model, directory: Path) -> Path:
    """Write the batch-1 inference endpoint as a SavedModel, the input of every conversion."""
    shape = [1, *(int(d) for d in model.inputs[0].shape[1:])]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE_KEY,
        lambda x: {OUTPUT_NAME: model(x, training=False)},
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)],
    )
    archive.write_out(str(directory), verbose=False)
    return directory


def _representative(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for i in range(min(len(images), REPRESENTATIVE_SAMPLES)):
            yield [images[i : i + 1].astype(np.float32)]

    return generate


def _converter(saved_model_dir: Path) -> Any:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def export_float32(saved_model_dir: Path) -> bytes:
    """Plain float32 TFLite model."""
    return bytes(_converter(saved_model_dir).convert())


def export_float16(saved_model_dir: Path) -> bytes:
    """Float16 weights (half the size); inputs and outputs stay float32."""
    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def export_dynamic_int8(saved_model_dir: Path) -> bytes:
    """Dynamic-range quantisation: int8 weights, float activations, no calibration data."""
    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return bytes(converter.convert())


def export_int8(saved_model_dir: Path, representative_images: np.ndarray) -> bytes:
    """Full-integer model with uint8 input and output, calibrated on normalised images.

    The app feeds ``round(normalised / scale + zero_point)`` (with the zero-one spec this is
    the raw pixel value) and dequantises the output with the output tensor's parameters.
    """
    if len(representative_images) == 0:
        raise ValueError("int8 export needs representative images")
    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(representative_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def export(
    model: keras.Model,
    fmt: ModelFormat,
    representative_images: np.ndarray,
    saved_model_dir: Path | None = None,
) -> bytes:
    """Export ``model`` in ``fmt`` (TFLite files without the manifest; see :func:`embed_manifest`).

    ``representative_images`` are normalised float32 ``(N, H, W, C)`` training images (only the
    int8 format uses them). Pass ``saved_model_dir`` from :func:`write_saved_model` to reuse
    one SavedModel for several formats. Conversion failures raise ``INTERNAL``.
    """
    if fmt is ModelFormat.KERAS:
        return export_keras(model)
    if saved_model_dir is None:
        with tempfile.TemporaryDirectory(prefix="mobiletrain-savedmodel-") as tmp:
            return export(model, fmt, representative_images, write_saved_model(model, Path(tmp)))
    try:
        if fmt is ModelFormat.FLOAT32:
            return export_float32(saved_model_dir)
        if fmt is ModelFormat.FLOAT16:
            return export_float16(saved_model_dir)
        if fmt is ModelFormat.DYNAMIC_INT8:
            return export_dynamic_int8(saved_model_dir)
        return export_int8(saved_model_dir, representative_images)
    except Exception as exc:  # converter errors are long MLIR dumps: keep them out of the message
        raise MobiletrainError(
            ErrorCode.INTERNAL, f"the model could not be exported as {fmt.value}"
        ) from exc


def embed_manifest(tflite_bytes: bytes, manifest: dict[str, Any]) -> bytes:
    """Store ``manifest`` as JSON in the flatbuffer metadata entry ``mobiletrain_manifest``.

    Replaces an earlier entry of that name; read it back with
    :func:`mobiletrain.compute.litert.read_embedded_manifest` (no TensorFlow needed).
    """
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    payload = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")
    data = np.frombuffer(payload, dtype=np.uint8)
    for entry in model.metadata or []:
        if _name(entry.name) == MANIFEST_METADATA_NAME:
            model.buffers[entry.buffer].data = data  # re-embedding: overwrite in place
            break
    else:
        buffer = schema_fb.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        entry = schema_fb.MetadataT()
        entry.name = MANIFEST_METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""
