"""Exports for on-device training that run in tflite_flutter as it is today.

tflite_flutter has neither a signature runner nor the Flex delegate, so the usual TFLite
on-device training model (signatures over resource variables, save/restore through Flex ops)
does not run there. What does run is a **stateless train-step model** made of builtin ops
only: the app feeds a batch, the current weights and the learning rate, and gets the loss and
the new weights back, keeping the weights in memory between calls.

Two things keep it builtin-only:

* ReLU is written with ``tf.custom_gradient`` (gradient ``dy * (x > 0)``): TensorFlow's own
  ReluGrad has no TFLite builtin;
* only the dense **head** is trained on the device. Convolution gradients are not builtins, so
  the convolutional part is a separate, frozen **feature extractor** — the usual
  personalisation pattern.

Files written per model version (formats in :class:`~mobiletrain.core.types.ModelFormat`):

``feature-extractor``  normalised image ``(1, H, W, C)`` → features ``(1, F)``
``train-step``         ``x, y, mask, lr, mu, weights…, anchors…`` → ``loss, new weights…``
``head-inference``     ``features (N, F), weights…`` → ``probabilities (N, classes)``
``head-signatures``    the head with its weights as variables and signatures ``train``,
                       ``infer``, ``get_weights``, ``set_weights`` (runtimes that have a
                       signature runner and resource variables; still builtin ops only)
``head-weights``       the weights, little-endian float32, in order (no TensorFlow format)
``float32``            the whole classifier (extractor + head) for plain inference

The classifier and the signature variant are exported once with random placeholder weights;
:func:`~mobiletrain.compute.ondevice.find_patch_sites` records where those bytes sit, so new
weights (every federated round) are written into a copy without TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from mobiletrain.compute import litert
from mobiletrain.compute.keras.export import (
    embed_manifest,
    export_float32,
    write_saved_model,
)
from mobiletrain.compute.ondevice import (
    ANCHOR_PREFIX,
    EXTRACTOR_INPUT,
    EXTRACTOR_OUTPUT,
    HEAD_INPUT,
    HEAD_OUTPUT,
    NEW_WEIGHT_PREFIX,
    ONDEVICE_SCHEMA_VERSION,
    TRAIN_STEP_DATA_INPUTS,
    TRAIN_STEP_LOSS_OUTPUT,
    WEIGHT_PREFIX,
    HeadSpec,
    PatchSite,
    find_patch_sites,
    patch_weights,
    weights_layout,
    weights_to_bytes,
)
from mobiletrain.compute.protocol import artifact_file_name
from mobiletrain.core.types import InputSpec, ModelFormat

# The layer of a trained classifier whose input is the feature vector (see builders._head).
HEAD_LAYER = "probabilities"
_SIGNATURES = ("train", "infer", "get_weights", "set_weights")


@tf.custom_gradient  # type: ignore[misc]
def relu(x: tf.Tensor) -> Any:
    """ReLU whose gradient is builtin ops (TensorFlow's ReluGrad is not a TFLite builtin)."""

    def grad(dy: tf.Tensor) -> tf.Tensor:
        return dy * tf.cast(x > 0, dy.dtype)

    return tf.maximum(x, 0.0), grad


def head_logits(x: tf.Tensor, weights: Sequence[tf.Tensor]) -> tf.Tensor:
    """Dense layers with ReLU between them; the last layer's logits."""
    h = x
    layers = len(weights) // 2
    for i in range(layers):
        h = tf.matmul(h, weights[2 * i]) + weights[2 * i + 1]
        if i < layers - 1:
            h = relu(h)
    return h


def masked_loss(logits: tf.Tensor, y: tf.Tensor, mask: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Mean cross-entropy over the rows whose mask is 1 (builtin ops and their gradients)."""
    log_probs = tf.nn.log_softmax(logits)
    per_row = -tf.reduce_sum(tf.one_hot(y, num_classes, dtype=tf.float32) * log_probs, axis=1)
    return tf.reduce_sum(per_row * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def _weight_specs(head: HeadSpec, prefix: str) -> list[tf.TensorSpec]:
    return [tf.TensorSpec(shape, tf.float32, name=prefix + n) for n, shape in head.weight_shapes()]


def _data_specs(head: HeadSpec) -> list[tf.TensorSpec]:
    b, f = head.batch_size, head.feature_dim
    shapes: dict[str, tuple[list[int], tf.DType]] = {
        "x": ([b, f], tf.float32),
        "y": ([b], tf.int32),
        "mask": ([b], tf.float32),
        "lr": ([1], tf.float32),
        "mu": ([1], tf.float32),
    }
    return [tf.TensorSpec(shapes[n][0], shapes[n][1], name=n) for n in TRAIN_STEP_DATA_INPUTS]


def _convert_saved_model(directory: Path, signature_keys: list[str] | None = None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(directory), signature_keys=signature_keys
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_enable_resource_variables = True
    return bytes(converter.convert())


def _convert_function(
    fn: Callable[..., Any], specs: list[tf.TensorSpec], outputs: list[str]
) -> bytes:
    """A tf.function with one signature → .tflite (builtins only) whose inputs are in the
    order of ``specs`` and outputs in the order of ``outputs`` (keys of the returned dict)."""
    module = tf.Module()
    module.fn = tf.function(fn, input_signature=specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.fn.get_concrete_function()], module
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return _reorder_io(bytes(converter.convert()), [str(s.name) for s in specs], outputs)


def _reorder_io(data: bytes, inputs: list[str], outputs: list[str]) -> bytes:
    """Put the subgraph's inputs and outputs in the documented order.

    The converter orders them as it likes (not as declared), but apps without a signature
    runner feed tensors by position. The signature's name → tensor map says which is which.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    signature = model.signatureDefs[0]

    def name(m: Any) -> str:
        return m.name.decode() if isinstance(m.name, bytes) else str(m.name)

    def by_key(maps: list[Any]) -> dict[str, int]:
        return {name(m): int(m.tensorIndex) for m in maps}

    in_map, out_map = by_key(signature.inputs), by_key(signature.outputs)
    if set(in_map) != set(inputs) or set(out_map) != set(outputs):
        raise RuntimeError(
            f"converted signature has inputs {sorted(in_map)} and outputs {sorted(out_map)}"
        )
    subgraph = model.subgraphs[signature.subgraphIndex]
    subgraph.inputs = np.array([in_map[n] for n in inputs], dtype=np.int32)
    subgraph.outputs = np.array([out_map[n] for n in outputs], dtype=np.int32)
    signature.inputs.sort(key=lambda m: inputs.index(name(m)))
    signature.outputs.sort(key=lambda m: outputs.index(name(m)))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def export_train_step(head: HeadSpec) -> bytes:
    """The stateless train-step model (see the module docstring for its tensors)."""
    n = len(head.weight_shapes())
    specs = _data_specs(head) + _weight_specs(head, WEIGHT_PREFIX)
    specs += _weight_specs(head, ANCHOR_PREFIX)
    names = head.weight_names()

    def step(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        x, y, mask, lr, mu = args[:5]
        weights, anchors = list(args[5 : 5 + n]), list(args[5 + n :])
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = masked_loss(head_logits(x, weights), y, mask, head.num_classes)
        grads = tape.gradient(loss, weights)
        out = {TRAIN_STEP_LOSS_OUTPUT: tf.reshape(loss, [1])}
        for name, w, g, a in zip(names, weights, grads, anchors, strict=True):
            # FedProx: the proximal term mu/2 * |w - anchor|^2 adds mu * (w - anchor).
            out[f"{NEW_WEIGHT_PREFIX}{name}"] = w - lr * (g + mu * (w - a))
        return out

    outputs = [TRAIN_STEP_LOSS_OUTPUT, *(NEW_WEIGHT_PREFIX + n for n in names)]
    data = _convert_function(step, specs, outputs)
    _check_order(data, [str(s.name) for s in specs], len(outputs))
    return data


def export_head_inference(head: HeadSpec) -> bytes:
    """Features ``(N, F)`` (resizable batch, 1 by default) and weights → probabilities."""
    specs = [tf.TensorSpec([None, head.feature_dim], tf.float32, name=HEAD_INPUT)]
    specs += _weight_specs(head, WEIGHT_PREFIX)

    def infer(x: tf.Tensor, *weights: tf.Tensor) -> dict[str, tf.Tensor]:
        return {HEAD_OUTPUT: tf.nn.softmax(head_logits(x, list(weights)))}

    data = _convert_function(infer, specs, [HEAD_OUTPUT])
    _check_order(data, [str(s.name) for s in specs], 1)
    return data


def _check_order(data: bytes, inputs: list[str], num_outputs: int) -> None:
    """The documented tensor order holds in LiteRT (apps feed by position)."""
    interpreter = Interpreter(model_content=data)
    got = [str(d["name"]) for d in interpreter.get_input_details()]
    if len(got) != len(inputs) or any(
        not g.endswith(f"_{name}:0") and g != name for g, name in zip(got, inputs, strict=True)
    ):
        raise RuntimeError(f"inputs came out as {got}, expected {inputs}")
    if len(interpreter.get_output_details()) != num_outputs:
        raise RuntimeError("the outputs do not match the head")


class _HeadModule(tf.Module):
    """The head with its weights as resource variables, for the signature variant."""

    def __init__(self, head: HeadSpec, initial: Sequence[np.ndarray]) -> None:
        super().__init__()
        self.head = head
        self.weights = [
            tf.Variable(w, name=name, dtype=tf.float32)
            for (name, _), w in zip(head.weight_shapes(), initial, strict=True)
        ]
        data = _data_specs(head)[:4]  # x, y, mask, lr
        self.train = tf.function(self._train, input_signature=data)
        self.infer = tf.function(
            self._infer,
            input_signature=[tf.TensorSpec([1, head.feature_dim], tf.float32, name=HEAD_INPUT)],
        )
        self.get_weights = tf.function(self._get_weights, input_signature=[])
        self.set_weights = tf.function(
            self._set_weights, input_signature=_weight_specs(head, WEIGHT_PREFIX)
        )

    def _train(
        self, x: tf.Tensor, y: tf.Tensor, mask: tf.Tensor, lr: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = masked_loss(head_logits(x, self.weights), y, mask, self.head.num_classes)
        for w, g in zip(self.weights, tape.gradient(loss, self.weights), strict=True):
            w.assign_sub(lr * g)
        return {TRAIN_STEP_LOSS_OUTPUT: tf.reshape(loss, [1])}

    def _infer(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {HEAD_OUTPUT: tf.nn.softmax(head_logits(x, self.weights))}

    def _get_weights(self) -> dict[str, tf.Tensor]:
        names = self.head.weight_names()
        return {n: tf.identity(w) for n, w in zip(names, self.weights, strict=True)}

    def _set_weights(self, *values: tf.Tensor) -> dict[str, tf.Tensor]:
        for w, v in zip(self.weights, values, strict=True):
            w.assign(v)
        return {"ok": tf.ones([1], tf.float32)}


def export_head_signatures(head: HeadSpec, initial: Sequence[np.ndarray]) -> bytes:
    """The signature variant: signatures train / infer / get_weights / set_weights."""
    module = _HeadModule(head, initial)
    signatures = {name: getattr(module, name).get_concrete_function() for name in _SIGNATURES}
    with tempfile.TemporaryDirectory(prefix="mobiletrain-ondevice-") as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        return _convert_saved_model(Path(tmp), list(_SIGNATURES))


def feature_extractor_of(model: keras.Model) -> keras.Model:
    """The part of a trained classifier below its head (see ``builders``)."""
    head = model.get_layer(HEAD_LAYER)
    return keras.Model(model.inputs, head.input, name="feature_extractor")


def flatten_extractor(spec: InputSpec) -> keras.Model:
    """The extractor of a head trained on raw pixels: it flattens the normalised image."""
    inputs = keras.Input((spec.height, spec.width, spec.channels), name=EXTRACTOR_INPUT)
    return keras.Model(inputs, keras.layers.Flatten(name=EXTRACTOR_OUTPUT)(inputs))


def _features_model(extractor: keras.Model) -> keras.Model:
    # A flat (N, F) output whatever the extractor ends with.
    x = extractor.outputs[0]
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten_features")(x)
    return keras.Model(extractor.inputs, x, name="feature_extractor")


def classifier_model(extractor: keras.Model, head: HeadSpec, weights: Sequence[np.ndarray]) -> Any:
    """Extractor + head as one Keras classifier (for the float32 file)."""
    x = extractor.outputs[0]
    sizes = head.layer_sizes
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        layer = keras.layers.Dense(
            sizes[i + 1],
            activation="softmax" if last else "relu",
            name=HEAD_LAYER if last else f"head_dense{i}",
        )
        x = layer(x)
        layer.set_weights([weights[2 * i], weights[2 * i + 1]])
    return keras.Model(extractor.inputs, x, name="classifier")


def _tflite_from_keras(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mobiletrain-ondevice-") as tmp:
        return export_float32(write_saved_model(model, Path(tmp) / "saved_model"))


def _tensors(details: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, (detail, name) in enumerate(zip(details, names, strict=True)):
        signature = detail.get("shape_signature", detail["shape"])
        out.append(
            {
                "index": i,
                "name": name,
                "tensor": str(detail["name"]),
                "dtype": np.dtype(detail["dtype"]).name,
                "shape": [int(v) for v in signature],
            }
        )
    return out


def _describe(data: bytes, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    interpreter = Interpreter(model_content=data)
    return {
        "inputs": _tensors(interpreter.get_input_details(), inputs),
        "outputs": _tensors(interpreter.get_output_details(), outputs),
    }


def _describe_signatures(data: bytes) -> dict[str, Any]:
    interpreter = Interpreter(model_content=data)
    out: dict[str, Any] = {}
    for key, io in interpreter.get_signature_list().items():
        runner = interpreter.get_signature_runner(key)
        out[key] = {
            "inputs": {
                name: {
                    "dtype": np.dtype(d["dtype"]).name,
                    "shape": [int(v) for v in d["shape"]],
                }
                for name, d in runner.get_input_details().items()
            },
            "outputs": sorted(io["outputs"]),
        }
    return out


@dataclass
class OnDeviceExport:
    """The on-device files of one model version and how to use them.

    ``manifest`` is the manifest's ``ondevice`` section; ``patch_sites`` says where the head
    weights sit in the ``float32`` classifier and the ``head-signatures`` file.
    """

    files: dict[ModelFormat, bytes]
    manifest: dict[str, Any]
    patch_sites: dict[ModelFormat, list[PatchSite]] = field(default_factory=dict)


def export_ondevice(
    spec: InputSpec,
    head: HeadSpec,
    weights: Sequence[np.ndarray],
    extractor: keras.Model | None = None,
    classifier: bool = True,
    manifest: dict[str, Any] | None = None,
    seed: int = 0,
) -> OnDeviceExport:
    """Write every on-device file for a head with ``weights`` on top of ``extractor``.

    ``extractor`` None means the head reads the flattened normalised pixels. ``classifier``
    also writes the whole classifier as ``float32``. ``manifest`` (the version's manifest
    without the ``ondevice`` section) is embedded in every .tflite file, with that section.
    Every .tflite file is checked to use builtin ops only.
    """
    weights = head.check_weights(weights)
    base = _features_model(extractor if extractor is not None else flatten_extractor(spec))
    feature_dim = int(base.outputs[0].shape[-1])
    if feature_dim != head.feature_dim:
        raise ValueError(
            f"the extractor gives {feature_dim} features, the head takes {head.feature_dim}"
        )
    # Random placeholders: their bytes are unique in the file, so they can be found again.
    rng = np.random.default_rng(seed + 7919)
    placeholders = [rng.standard_normal(w.shape).astype(np.float32) for w in weights]

    files: dict[ModelFormat, bytes] = {
        ModelFormat.FEATURE_EXTRACTOR: _tflite_from_keras(base),
        ModelFormat.TRAIN_STEP: export_train_step(head),
        ModelFormat.HEAD_INFERENCE: export_head_inference(head),
        ModelFormat.HEAD_SIGNATURES: export_head_signatures(head, placeholders),
    }
    if classifier:
        files[ModelFormat.FLOAT32] = _tflite_from_keras(classifier_model(base, head, placeholders))
    for fmt, data in files.items():
        custom = litert.custom_op_names(data)
        if custom:
            raise RuntimeError(f"the {fmt.value} export needs non-builtin ops: {custom}")

    names = head.weight_names()
    section: dict[str, Any] = {
        "schema_version": ONDEVICE_SCHEMA_VERSION,
        "head": head.to_dict(),
        "feature_extractor": {
            "kind": "flatten" if extractor is None else "backbone",
            "file": artifact_file_name(ModelFormat.FEATURE_EXTRACTOR),
            **_describe(
                files[ModelFormat.FEATURE_EXTRACTOR], [EXTRACTOR_INPUT], [EXTRACTOR_OUTPUT]
            ),
        },
        "train_step": {
            "file": artifact_file_name(ModelFormat.TRAIN_STEP),
            "batch_size": head.batch_size,
            **_describe(
                files[ModelFormat.TRAIN_STEP],
                [
                    *TRAIN_STEP_DATA_INPUTS,
                    *(WEIGHT_PREFIX + n for n in names),
                    *(ANCHOR_PREFIX + n for n in names),
                ],
                [TRAIN_STEP_LOSS_OUTPUT, *(NEW_WEIGHT_PREFIX + n for n in names)],
            ),
        },
        "head_inference": {
            "file": artifact_file_name(ModelFormat.HEAD_INFERENCE),
            **_describe(
                files[ModelFormat.HEAD_INFERENCE],
                [HEAD_INPUT, *(WEIGHT_PREFIX + n for n in names)],
                [HEAD_OUTPUT],
            ),
        },
        "head_signatures": {
            "file": artifact_file_name(ModelFormat.HEAD_SIGNATURES),
            "signatures": _describe_signatures(files[ModelFormat.HEAD_SIGNATURES]),
        },
        "weights": {
            "file": artifact_file_name(ModelFormat.HEAD_WEIGHTS),
            "tensors": weights_layout(head),
        },
    }
    if classifier:
        section["classifier"] = {
            "file": artifact_file_name(ModelFormat.FLOAT32),
            **_describe(files[ModelFormat.FLOAT32], [EXTRACTOR_INPUT], [HEAD_OUTPUT]),
        }
    full_manifest = {**(manifest or {}), "ondevice": section}
    for fmt in list(files):
        files[fmt] = embed_manifest(files[fmt], full_manifest)

    sites: dict[ModelFormat, list[PatchSite]] = {}
    for fmt in (ModelFormat.HEAD_SIGNATURES, ModelFormat.FLOAT32):
        if fmt in files:
            sites[fmt] = find_patch_sites(files[fmt], placeholders)
            files[fmt] = patch_weights(files[fmt], sites[fmt], weights)
    files[ModelFormat.HEAD_WEIGHTS] = weights_to_bytes(weights)
    return OnDeviceExport(files=files, manifest=section, patch_sites=sites)


def head_of(model: keras.Model, batch_size: int = 32) -> tuple[HeadSpec, list[np.ndarray]]:
    """The head spec and weights of a trained classifier's last Dense layer."""
    layer = model.get_layer(HEAD_LAYER)
    kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
    head = HeadSpec(
        feature_dim=int(kernel.shape[0]),
        num_classes=int(kernel.shape[1]),
        hidden=(),
        batch_size=batch_size,
    )
    return head, [kernel, bias]


# --- command line: the server runs the export in a child process (it never imports TF) ---


def main(argv: list[str] | None = None) -> int:
    """``python -m mobiletrain.compute.keras.ondevice --request r.json --out DIR``.

    The request: ``{"input_spec": {...}, "head": {...}, "weights": "weights.bin" | null,
    "base_model": "model.keras" | null, "manifest": {...}, "seed": 0}`` (paths relative to
    the request file). Writes ``<format>`` files and ``result.json`` (``manifest``,
    ``patch_sites``, and ``head`` as used) into ``DIR``.
    """
    parser = argparse.ArgumentParser(description="mobiletrain on-device export")
    parser.add_argument("--request", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    from mobiletrain.compute.ondevice import weights_from_bytes

    request = json.loads(args.request.read_text())
    folder = args.request.parent
    spec = InputSpec.from_dict(request["input_spec"])
    head = HeadSpec.from_dict(request["head"])
    seed = int(request.get("seed", 0))
    extractor = None
    weights: list[np.ndarray] | None = None
    if request.get("base_model"):
        base = keras.saving.load_model(str(folder / request["base_model"]), compile=False)
        extractor = feature_extractor_of(base)
        trained_head, trained_weights = head_of(base, head.batch_size)
        if head.hidden:
            # A deeper head than the trained one: new layers on the same features.
            head = HeadSpec(
                trained_head.feature_dim, trained_head.num_classes, head.hidden, head.batch_size
            )
        else:
            head, weights = trained_head, trained_weights
    if request.get("weights"):
        weights = weights_from_bytes((folder / request["weights"]).read_bytes(), head)
    if weights is None:
        weights = head.init_weights(seed)
    result = export_ondevice(
        spec, head, weights, extractor, manifest=request.get("manifest") or {}, seed=seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for fmt, data in result.files.items():
        (args.out / fmt.value).write_bytes(data)
    (args.out / "result.json").write_text(
        json.dumps(
            {
                "manifest": result.manifest,
                "head": head.to_dict(),
                "patch_sites": {
                    fmt.value: [s.to_dict() for s in sites]
                    for fmt, sites in result.patch_sites.items()
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
