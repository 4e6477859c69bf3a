"""Model builders, export and manifest embedding (TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from mobiletrain.compute.keras.builders import build_augmentation, build_model  # noqa: E402
from mobiletrain.compute.keras.export import embed_manifest, export  # noqa: E402
from mobiletrain.compute.litert import (  # noqa: E402
    LiteRTModel,
    custom_op_names,
    read_embedded_manifest,
    read_tflite_metadata,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    Architecture,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
)

GRAY32 = InputSpec(width=32, height=32, color_mode=ColorMode.GRAYSCALE)


class Events:
    """Minimal Reporter."""

    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        return False


def load_strict(data: bytes) -> Interpreter:
    """Load with builtin kernels only: a Flex/custom op would fail here."""
    interpreter = Interpreter(
        model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN
    )
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.parametrize(
    ("spec", "blocks"),
    [
        (InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE), 1),
        (GRAY32, 3),
        (InputSpec(width=96, height=96), 4),
        (InputSpec(width=224, height=160), 4),
    ],
)
def test_small_cnn_shapes(spec: InputSpec, blocks: int) -> None:
    model = build_model(Architecture.SMALL_CNN, spec, 5, Hyperparameters())
    assert model.input_shape == (None, spec.height, spec.width, spec.channels)
    assert model.output_shape == (None, 5)
    assert sum(1 for layer in model.layers if layer.name.startswith("pool")) == blocks
    assert model.count_params() < 500_000
    out = model(np.zeros((2, spec.height, spec.width, spec.channels), np.float32))
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, rtol=1e-5)


def test_one_class_is_not_enough() -> None:
    with pytest.raises(MobiletrainError) as info:
        build_model(Architecture.SMALL_CNN, GRAY32, 1, Hyperparameters())
    assert info.value.code is ErrorCode.NOT_ENOUGH_DATA


@pytest.mark.parametrize("arch", [Architecture.MOBILENET_V3_SMALL, Architecture.MOBILENET_V2])
def test_mobilenet_input_too_small(arch: Architecture) -> None:
    with pytest.raises(MobiletrainError) as info:
        build_model(arch, InputSpec(width=31, height=64), 3, Hyperparameters())
    assert info.value.code is ErrorCode.INVALID_INPUT_SPEC
    assert "at least 32x32" in info.value.message


def _offline(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ImageNet weights unavailable, as on an offline server."""
    original = getattr(keras.applications, name)

    def fake(*args: Any, weights: str | None = None, **kwargs: Any) -> Any:
        if weights == "imagenet":
            raise Exception("URL fetch failure (simulated)")
        return original(*args, weights=weights, **kwargs)

    monkeypatch.setattr(keras.applications, name, fake)


def test_mobilenet_without_weights_fails_unless_random_init_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _offline(monkeypatch, "MobileNetV3Small")
    with pytest.raises(MobiletrainError) as info:
        build_model(Architecture.MOBILENET_V3_SMALL, GRAY32, 3, Hyperparameters())
    assert info.value.code is ErrorCode.BASE_WEIGHTS_UNAVAILABLE
    assert "allow_random_init" in info.value.message


def test_mobilenet_v3_without_weights_falls_back_and_exports_builtin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _offline(monkeypatch, "MobileNetV3Small")
    events = Events()
    model = build_model(
        Architecture.MOBILENET_V3_SMALL,
        GRAY32,
        3,
        Hyperparameters(allow_random_init=True),
        reporter=events,
    )
    logs = [d for k, d in events.events if k is EventKind.LOG]
    assert len(logs) == 1 and "random initialisation" in logs[0]["message"]
    assert logs[0]["level"] == "warning"
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert backbone.trainable  # a random backbone is trained, not frozen
    assert model.get_layer("gray_to_rgb") is not None
    data = export(model, ModelFormat.FLOAT32, np.zeros((0, 32, 32, 1), np.float32))
    assert custom_op_names(data) == []
    load_strict(data)


def test_mobilenet_v2_builds_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch, "MobileNetV2")
    model = build_model(
        Architecture.MOBILENET_V2,
        InputSpec(width=32, height=32),
        4,
        Hyperparameters(allow_random_init=True),
        reporter=Events(),
    )
    assert model.output_shape == (None, 4)


def test_base_model_is_a_frozen_feature_extractor(tmp_path: Path) -> None:
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    base = keras.Model(inputs, x)
    path = tmp_path / "base.keras"
    base.save(path)

    model = build_model(Architecture.SMALL_CNN, GRAY32, 3, Hyperparameters(), base_model_path=path)
    assert model.output_shape == (None, 3)
    # Only the new Dense head trains.
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 4 * 3 + 3

    with pytest.raises(MobiletrainError) as info:
        build_model(
            Architecture.SMALL_CNN,
            InputSpec(width=32, height=32),
            3,
            Hyperparameters(),
            base_model_path=path,
        )
    assert info.value.code is ErrorCode.INVALID_ARGUMENT

    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"PK not really a zip")
    with pytest.raises(MobiletrainError) as info:
        build_model(Architecture.SMALL_CNN, GRAY32, 3, Hyperparameters(), base_model_path=garbage)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_base_model_with_lambda_is_refused(tmp_path: Path) -> None:
    inputs = keras.Input((32, 32, 1))
    base = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    base.save(path)
    with pytest.raises(MobiletrainError) as info:
        build_model(Architecture.SMALL_CNN, GRAY32, 3, Hyperparameters(), base_model_path=path)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_augmentation_block() -> None:
    assert build_augmentation(Hyperparameters(), seed=1) is None
    hp = Hyperparameters(
        augment_flip=True, augment_rotation=0.1, augment_zoom=0.1, augment_contrast=0.2
    )
    augment = build_augmentation(hp, seed=1)
    assert augment is not None and len(augment.layers) == 4
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype(np.float32)
    out = np.asarray(augment(pixels, training=True))
    assert out.shape == pixels.shape and out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(np.asarray(augment(pixels, training=False)), pixels)


def test_manifest_embed_round_trip() -> None:
    model = build_model(Architecture.SMALL_CNN, GRAY32, 2, Hyperparameters())
    raw = export(model, ModelFormat.FLOAT32, np.zeros((0, 32, 32, 1), np.float32))
    assert read_embedded_manifest(raw) is None
    first = embed_manifest(raw, {"schema_version": 1, "labels": ["a", "b"]})
    assert read_embedded_manifest(first) == {"schema_version": 1, "labels": ["a", "b"]}
    second = embed_manifest(first, {"schema_version": 1, "labels": ["c"]})
    assert read_embedded_manifest(second) == {"schema_version": 1, "labels": ["c"]}
    # The converter's own metadata survives, and the file still loads and runs the same.
    assert "min_runtime_version" in read_tflite_metadata(second)
    load_strict(second)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    np.testing.assert_allclose(
        LiteRTModel(second, GRAY32).predict_uint8(pixels),
        LiteRTModel(raw, GRAY32).predict_uint8(pixels),
    )
