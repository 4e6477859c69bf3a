"""On-device training exports: builtin ops only, documented tensors, training in LiteRT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from mobiletrain.compute.keras.ondevice import (  # noqa: E402
    OnDeviceExport,
    export_ondevice,
    feature_extractor_of,
    head_of,
)
from mobiletrain.compute.keras.train import train_and_export  # noqa: E402
from mobiletrain.compute.litert import (  # noqa: E402
    LiteRTModel,
    custom_op_names,
    read_embedded_manifest,
)
from mobiletrain.compute.ondevice import (  # noqa: E402
    FeatureExtractor,
    HeadInference,
    HeadSpec,
    TrainStep,
    accuracy,
    find_patch_sites,
    patch_weights,
    weights_from_bytes,
    weights_to_bytes,
)
from mobiletrain.compute.protocol import TrainingRequest  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
)

SPEC = InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE)
HEAD = HeadSpec(feature_dim=64, num_classes=10, hidden=(32,), batch_size=16)
TFLITE_FILES = (
    ModelFormat.FEATURE_EXTRACTOR,
    ModelFormat.TRAIN_STEP,
    ModelFormat.HEAD_INFERENCE,
    ModelFormat.HEAD_SIGNATURES,
    ModelFormat.FLOAT32,
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    return pixels, data.target.astype(np.int64)


@pytest.fixture(scope="module")
def exported() -> OnDeviceExport:
    return export_ondevice(
        SPEC, HEAD, HEAD.init_weights(3), manifest={"labels": list("0123456789")}
    )


@pytest.fixture(scope="module")
def features(exported: OnDeviceExport, digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    extractor = FeatureExtractor(exported.files[ModelFormat.FEATURE_EXTRACTOR], SPEC)
    return extractor.features(digits[0])


def test_every_file_uses_builtin_ops_only(exported: OnDeviceExport) -> None:
    for fmt in TFLITE_FILES:
        assert custom_op_names(exported.files[fmt]) == [], fmt


def test_manifest_documents_tensor_order(exported: OnDeviceExport) -> None:
    step = exported.manifest["train_step"]
    names = [t["name"] for t in step["inputs"]]
    weights = HEAD.weight_names()
    assert names == [
        "x",
        "y",
        "mask",
        "lr",
        "mu",
        *(f"w_{n}" for n in weights),
        *(f"anchor_{n}" for n in weights),
    ]
    assert [t["name"] for t in step["outputs"]] == ["loss", *(f"new_{n}" for n in weights)]
    assert step["inputs"][0]["shape"] == [16, 64] and step["inputs"][1]["dtype"] == "int32"
    # The order in the manifest is the order the interpreter reports (what apps index by).
    details = Interpreter(model_content=exported.files[ModelFormat.TRAIN_STEP]).get_input_details()
    assert [d["name"] for d in details] == [t["tensor"] for t in step["inputs"]]
    layout = exported.manifest["weights"]["tensors"]
    assert [t["name"] for t in layout] == weights
    assert layout[-1]["offset"] + layout[-1]["size"] == 4 * HEAD.num_parameters
    embedded = read_embedded_manifest(exported.files[ModelFormat.TRAIN_STEP])
    assert embedded is not None and embedded["ondevice"]["head"] == HEAD.to_dict()
    assert embedded["labels"] == list("0123456789")
    signatures = exported.manifest["head_signatures"]["signatures"]
    assert set(signatures) == {"train", "infer", "get_weights", "set_weights"}


def test_train_step_in_litert_lowers_the_loss(
    exported: OnDeviceExport, features: np.ndarray, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    _, labels = digits
    step = TrainStep(exported.files[ModelFormat.TRAIN_STEP], HEAD)
    weights = weights_from_bytes(exported.files[ModelFormat.HEAD_WEIGHTS], HEAD)
    result = step.fit(features[:1400], labels[:1400], weights, lr=0.1, epochs=3, seed=1)
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert last < 0.5 * first, (first, last)
    head = HeadInference(exported.files[ModelFormat.HEAD_INFERENCE], HEAD)
    held_out = accuracy(head.predict(features[1400:], result.weights), labels[1400:])
    assert held_out > 0.85


def test_masked_rows_do_not_count(exported: OnDeviceExport, features: np.ndarray) -> None:
    step = TrainStep(exported.files[ModelFormat.TRAIN_STEP], HEAD)
    weights = HEAD.init_weights(0)
    x = np.zeros((16, 64), np.float32)
    x[:4] = features[:4]
    y = np.zeros(16, np.int32)
    mask = np.zeros(16, np.float32)
    mask[:4] = 1
    loss_a, new_a = step.step(x, y, mask, weights, lr=0.1)
    x[4:] = 100.0  # garbage in the padding rows changes nothing
    y[4:] = 9
    loss_b, new_b = step.step(x, y, mask, weights, lr=0.1)
    assert loss_a == pytest.approx(loss_b)
    for a, b in zip(new_a, new_b, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fedprox_term_pulls_towards_the_anchor(
    exported: OnDeviceExport, features: np.ndarray
) -> None:
    step = TrainStep(exported.files[ModelFormat.TRAIN_STEP], HEAD)
    weights = HEAD.init_weights(0)
    anchors = [w + 1.0 for w in weights]
    mask = np.zeros(16, np.float32)  # no data: only the proximal term moves the weights
    _, plain = step.step(features[:16], np.zeros(16), mask, weights, 0.5, 0.0, anchors)
    _, prox = step.step(features[:16], np.zeros(16), mask, weights, 0.5, 1.0, anchors)
    np.testing.assert_allclose(plain[1], weights[1], atol=1e-6)
    np.testing.assert_allclose(prox[1], weights[1] + 0.5, atol=1e-6)


def test_classifier_and_signature_variant_take_patched_weights(
    exported: OnDeviceExport, features: np.ndarray, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels, _ = digits
    new = HEAD.init_weights(11)
    head = HeadInference(exported.files[ModelFormat.HEAD_INFERENCE], HEAD)
    expected = head.predict(features[:20], new)

    sites = exported.patch_sites[ModelFormat.FLOAT32]
    classifier = patch_weights(exported.files[ModelFormat.FLOAT32], sites, new)
    got = LiteRTModel(classifier, SPEC).predict_uint8(pixels[:20])
    np.testing.assert_allclose(got, expected, atol=1e-5)

    sites = exported.patch_sites[ModelFormat.HEAD_SIGNATURES]
    interpreter = Interpreter(
        model_content=patch_weights(exported.files[ModelFormat.HEAD_SIGNATURES], sites, new)
    )
    stored = interpreter.get_signature_runner("get_weights")()
    for name, w in zip(HEAD.weight_names(), new, strict=True):
        np.testing.assert_array_equal(stored[name], w)
    probs = interpreter.get_signature_runner("infer")(features=features[:1])["probabilities"]
    np.testing.assert_allclose(probs, expected[:1], atol=1e-5)
    train = interpreter.get_signature_runner("train")
    losses = [
        float(
            train(
                x=features[:16],
                y=digits[1][:16].astype(np.int32),
                mask=np.ones(16, np.float32),
                lr=np.array([0.1], np.float32),
            )["loss"][0]
        )
        for _ in range(5)
    ]
    assert losses[-1] < losses[0]
    interpreter.get_signature_runner("set_weights")(
        **{f"w_{n}": w for n, w in zip(HEAD.weight_names(), new, strict=True)}
    )
    np.testing.assert_array_equal(
        interpreter.get_signature_runner("get_weights")()["dense0_kernel"], new[0]
    )


def test_weights_file_round_trip_and_patch_sites() -> None:
    weights = HEAD.init_weights(5)
    data = weights_to_bytes(weights)
    assert len(data) == 4 * HEAD.num_parameters
    for a, b in zip(weights_from_bytes(data, HEAD), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        weights_from_bytes(data[:-4], HEAD)
    blob = b"\x00" * 8 + weights_to_bytes([weights[0].T]) + weights_to_bytes([weights[1] + 1])
    sites = find_patch_sites(blob, [weights[0], weights[1] + 1])
    assert sites[0].transposed and not sites[1].transposed
    assert patch_weights(blob, sites, [weights[0], weights[1] + 1]) == blob


def _tiny_cnn() -> Any:
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="head_dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def test_backbone_export_matches_the_trained_model(digits: tuple[np.ndarray, np.ndarray]) -> None:
    model = _tiny_cnn()
    head, weights = head_of(model, batch_size=8)
    assert head.feature_dim == 4 and head.hidden == ()
    result = export_ondevice(SPEC, head, weights, feature_extractor_of(model))
    assert result.manifest["feature_extractor"]["kind"] == "backbone"
    pixels = digits[0][:5]
    expected = np.asarray(model(pixels.astype(np.float32) / 255.0, training=False))
    got = LiteRTModel(result.files[ModelFormat.FLOAT32], SPEC).predict_uint8(pixels)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    feats = FeatureExtractor(result.files[ModelFormat.FEATURE_EXTRACTOR], SPEC).features(pixels)
    head_probs = HeadInference(result.files[ModelFormat.HEAD_INFERENCE], head).predict(
        feats, weights
    )
    np.testing.assert_allclose(head_probs, expected, atol=1e-5)
    for fmt in TFLITE_FILES:
        assert custom_op_names(result.files[fmt]) == []


def test_command_line_export(tmp_path: Path) -> None:
    """The server runs the export in a child process (it never imports TensorFlow)."""
    request = {
        "input_spec": SPEC.to_dict(),
        "head": {"feature_dim": 64, "num_classes": 3, "hidden": [], "batch_size": 4},
        "manifest": {"labels": ["a", "b", "c"]},
        "seed": 1,
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mobiletrain.compute.keras.ondevice",
            "--request",
            str(tmp_path / "request.json"),
            "--out",
            str(tmp_path / "out"),
        ],
        check=True,
        capture_output=True,
    )
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["head"]["num_classes"] == 3
    assert set(result["patch_sites"]) == {"head-signatures", "float32"}
    for fmt in TFLITE_FILES:
        assert custom_op_names((tmp_path / "out" / fmt.value).read_bytes()) == []


def test_training_job_exports_on_device_files(tmp_path: Path) -> None:
    from io import BytesIO

    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    images = []
    for p in np.round(data.images[:120] * (255.0 / 16.0)).astype(np.uint8):
        buf = BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        images.append(buf.getvalue())
    formats = [ModelFormat.FLOAT32, ModelFormat.TRAIN_STEP, ModelFormat.HEAD_WEIGHTS]
    formats += [ModelFormat.FEATURE_EXTRACTOR]
    request = TrainingRequest(
        images=images,
        labels=[int(t) for t in data.target[:120]],
        sample_ids=[f"s{i}" for i in range(120)],
        label_names=[str(d) for d in range(10)],
        input_spec=InputSpec(width=16, height=16, color_mode=ColorMode.GRAYSCALE),
        hyperparameters=Hyperparameters(epochs=1, batch_size=16, formats=formats),
        work_dir=tmp_path,
    )

    class Reporter:
        def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
            pass

        def should_stop(self) -> bool:
            return False

    out = train_and_export(request, Reporter())
    assert set(out.artifacts) == {ModelFormat.KERAS, *formats}
    section = out.manifest["ondevice"]
    assert section["feature_extractor"]["kind"] == "backbone"
    head = HeadSpec.from_dict(section["head"])
    assert head.hidden == () and head.num_classes == 10
    assert len(out.artifacts[ModelFormat.HEAD_WEIGHTS]) == 4 * head.num_parameters
    assert out.manifest["formats"]["train-step"]["file"] == "model-train-step.tflite"
    embedded = read_embedded_manifest(out.artifacts[ModelFormat.TRAIN_STEP])
    assert embedded is not None and "ondevice" in embedded
