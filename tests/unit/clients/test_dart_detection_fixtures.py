"""Golden fixtures for the Dart ``ObjectDetector``, checked against the real model in LiteRT.

``clients/dart/mobiletrain_client/test/fixtures/detection/`` holds a small trained detector
exported by the server's code (``detector-dynamic-int8.tflite``: the network plus the
in-model decoding and NMS; the dynamic-int8 format keeps the file small, and has the float32
input and outputs of the float32 file), its ``manifest.json`` (labels, input spec,
``outputs`` with roles, ``task_spec``), two held-out synthetic scenes as PNG files (one
landscape, one portrait, so the mapping back to image pixels matters) and ``golden.json``:
per scene and resize mode (``stretch``: the server's preprocessing; ``letterbox``: scaled to
fit, padded with grey 114) the four raw outputs LiteRT gives and the detections in image
pixels that ``decodeDetections`` must make of them. ``detection_test.dart`` reads the same
files.

The tests run the stored model in LiteRT on the stored scenes and compare with the stored
outputs, re-derive the pixel boxes with the reference mapping below (the Dart port's
specification), and check the stored model still has the outputs, in order, that the current
export writes. Regenerate (trains for a few minutes) with
``python tests/unit/clients/test_dart_detection_fixtures.py``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from mobiletrain.compute.preprocess import decode_image, normalize
from mobiletrain.core.types import ColorMode, DetectionSpec, InputSpec, Normalization

FIXTURES = (
    Path(__file__).resolve().parents[3] / "clients/dart/mobiletrain_client/test/fixtures/detection"
)
MODEL = FIXTURES / "detector-dynamic-int8.tflite"
MANIFEST = FIXTURES / "manifest.json"
GOLDEN = FIXTURES / "golden.json"
SCENES = ("scene-landscape.png", "scene-portrait.png")
MODES = ("stretch", "letterbox")
FILL = 114
LABELS = ["circle", "square", "triangle"]
SPEC = InputSpec(
    width=96,
    height=96,
    color_mode=ColorMode.RGB,
    normalization=Normalization.ZERO_ONE,
    task_spec=DetectionSpec(max_detections=10, score_threshold=0.3, iou_threshold=0.5),
)
ROLES = ("boxes", "classes", "scores", "count")


def letterbox_size(iw: int, ih: int, mw: int, mh: int) -> tuple[int, int]:
    """The scaled image inside the letterbox (as ``letterboxSize`` in detection.dart)."""
    s = min(mw / iw, mh / ih)
    return max(1, min(mw, round(iw * s))), max(1, min(mh, round(ih * s)))


def model_input(png: bytes, mode: str) -> tuple[np.ndarray, dict[str, float]]:
    """uint8 ``(H, W, 3)`` model pixels and the mapping back (scale and padding, model px)."""
    with Image.open(io.BytesIO(png)) as img:
        iw, ih = img.size
        rgb = img.convert("RGB")
        if mode == "stretch":
            pixels = decode_image(png, SPEC)  # the server's own preprocessing
            mapping = {"sx": SPEC.width / iw, "sy": SPEC.height / ih, "px": 0, "py": 0}
        else:
            w, h = letterbox_size(iw, ih, SPEC.width, SPEC.height)
            canvas = np.full((SPEC.height, SPEC.width, 3), FILL, np.uint8)
            px, py = (SPEC.width - w) // 2, (SPEC.height - h) // 2
            scaled = np.asarray(rgb.resize((w, h), Image.Resampling.BILINEAR))
            canvas[py : py + h, px : px + w] = scaled
            pixels = canvas
            mapping = {"sx": w / iw, "sy": h / ih, "px": px, "py": py}
    return pixels, {**mapping, "iw": iw, "ih": ih}


def run_model(model: bytes, pixels: np.ndarray) -> dict[str, list[float]]:
    """The four outputs (flattened float lists) in tensor order."""
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    x = normalize(pixels[None], SPEC).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    outs = interpreter.get_output_details()
    return {
        role: interpreter.get_tensor(o["index"]).astype(np.float64).reshape(-1).tolist()
        for role, o in zip(ROLES, outs, strict=True)
    }


def decode(raw: dict[str, list[float]], m: dict[str, float], labels: list[str]) -> list[Any]:
    """Reference of ``decodeDetections``: rows up to count, boxes to clipped image pixels,
    boxes without area dropped."""
    n = min(round(raw["count"][0]), len(raw["scores"]))
    out = []
    for i in range(n):
        y0, x0, y1, x1 = raw["boxes"][4 * i : 4 * i + 4]

        def x(v: float) -> float:
            return float(np.clip((v * SPEC.width - m["px"]) / m["sx"], 0.0, m["iw"]))

        def y(v: float) -> float:
            return float(np.clip((v * SPEC.height - m["py"]) / m["sy"], 0.0, m["ih"]))

        box = {"left": x(x0), "top": y(y0), "right": x(x1), "bottom": y(y1)}
        if box["right"] <= box["left"] or box["bottom"] <= box["top"]:
            continue
        index = round(raw["classes"][i])
        label = labels[index] if 0 <= index < len(labels) else f"class_{index}"
        out.append({"label": label, "index": index, "score": raw["scores"][i], "box": box})
    return out


def build_cases(model: bytes, labels: list[str]) -> list[dict[str, Any]]:
    cases = []
    for name in SCENES:
        png = (FIXTURES / name).read_bytes()
        for mode in MODES:
            pixels, mapping = model_input(png, mode)
            raw = run_model(model, pixels)
            cases.append(
                {
                    "image": name,
                    "mode": mode,
                    "mapping": mapping,
                    "raw": raw,
                    "detections": decode(raw, mapping, labels),
                }
            )
    return cases


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


def test_the_stored_model_gives_the_stored_outputs_in_litert(golden: dict[str, Any]) -> None:
    model = MODEL.read_bytes()
    labels = json.loads(MANIFEST.read_text())["labels"]
    fresh = build_cases(model, labels)
    assert [(c["image"], c["mode"]) for c in golden["cases"]] == [
        (c["image"], c["mode"]) for c in fresh
    ]
    for old, new in zip(golden["cases"], fresh, strict=True):
        what = f"{old['image']} {old['mode']}"
        assert old["mapping"] == pytest.approx(new["mapping"]), what
        for role in ROLES:
            # Kernels differ a little between CPUs (AVX2 / AVX-512): a loose tolerance.
            np.testing.assert_allclose(old["raw"][role], new["raw"][role], atol=2e-4, err_msg=what)


def test_the_stored_detections_follow_from_the_stored_outputs(golden: dict[str, Any]) -> None:
    """What the Dart test compares with: the reference mapping of the stored raw outputs."""
    labels = json.loads(MANIFEST.read_text())["labels"]
    for case in golden["cases"]:
        expected = decode(case["raw"], case["mapping"], labels)
        assert len(expected) == len(case["detections"]), case["image"]
        for a, b in zip(expected, case["detections"], strict=True):
            assert (a["label"], a["index"]) == (b["label"], b["index"])
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
            assert a["box"] == pytest.approx(b["box"], abs=1e-4)


def test_the_fixture_exercises_the_mapping(golden: dict[str, Any]) -> None:
    """Both shapes of image, detections in every case, letterbox padding on the short side,
    and stretch and letterbox boxes of one object agreeing roughly in image pixels."""
    by = {(c["image"], c["mode"]): c for c in golden["cases"]}
    for name in SCENES:
        s, lb = by[(name, "stretch")], by[(name, "letterbox")]
        assert s["detections"], f"{name}: the fixture model finds nothing"
        assert lb["detections"], f"{name}: nothing found in the letterboxed input"
        landscape = s["mapping"]["iw"] > s["mapping"]["ih"]
        assert (lb["mapping"]["py"] > 0) == landscape and (lb["mapping"]["px"] > 0) != landscape
        top_s, top_lb = s["detections"][0], lb["detections"][0]
        if top_s["label"] == top_lb["label"]:
            cx = (top_s["box"]["left"] + top_s["box"]["right"]) / 2
            cx_lb = (top_lb["box"]["left"] + top_lb["box"]["right"]) / 2
            assert abs(cx - cx_lb) < 0.25 * s["mapping"]["iw"], name


def test_the_stored_model_has_the_outputs_the_export_writes_now() -> None:
    """Names and order of the four outputs, and the manifest's ``outputs`` and ``task_spec``,
    as the current server code writes them (so the Dart reader follows the real contract)."""
    from mobiletrain.tasks.detection import OUTPUT_NAMES, OUTPUT_ROLES

    interpreter = Interpreter(model_content=MODEL.read_bytes())
    outs = interpreter.get_output_details()
    assert [o["name"] for o in outs] == list(OUTPUT_NAMES)
    assert list(OUTPUT_ROLES) == list(ROLES)
    n = SPEC.task_spec.max_detections  # type: ignore[union-attr]
    assert [list(o["shape"]) for o in outs] == [[1, n, 4], [1, n], [1, n], [1]]
    assert all(o["dtype"] == np.float32 for o in outs)
    manifest = json.loads(MANIFEST.read_text())
    assert manifest == fixture_manifest()


def fixture_manifest() -> dict[str, Any]:
    """The parts of manifest.json the Dart detector reads, from the current export code."""
    from mobiletrain.compute.keras.tasks.detection import manifest_outputs

    detection = SPEC.task_spec
    assert isinstance(detection, DetectionSpec)
    return {
        "task": "object-detection",
        "labels": LABELS,
        "input": {
            "width": SPEC.width,
            "height": SPEC.height,
            "color_mode": SPEC.color_mode.value,
            "normalization": SPEC.normalization.value,
            "channels": 3,
        },
        "output": {"kind": "detection", "num_classes": len(LABELS)},
        "outputs": [t.to_dict() for t in manifest_outputs(detection)],
        "task_spec": detection.to_dict(),
        "formats": {"dynamic-int8": {"file": MODEL.name}},
    }


def _train_and_export() -> bytes:  # pragma: no cover - regeneration only
    """A small detector trained on synthetic scenes (no augmentation; a fixture, not a
    benchmark), exported with the server's dynamic-int8 path."""
    import tempfile

    import keras

    from mobiletrain.compute.keras.tasks import detection as det
    from mobiletrain.core.types import Architecture, Hyperparameters, ModelFormat
    from mobiletrain.tasks.detection_synth import scenes

    keras.utils.set_random_seed(7)
    train = scenes(400, seed=11, prefix="fixture")
    x = np.stack([decode_image(s.jpeg, SPEC) for s in train]).astype(np.float32)
    boxes = [
        np.array(
            [[LABELS.index(b.label), b.x_min, b.y_min, b.x_max, b.y_max] for b in s.boxes],
            np.float32,
        ).reshape(-1, 5)
        for s in train
    ]
    hp = Hyperparameters(architecture=Architecture.SMALL_CNN)
    model = det.build_detector(SPEC, len(LABELS), hp)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=det.make_loss(len(LABELS)))
    targets = det.encode_targets(boxes, SPEC, len(LABELS))
    model.fit(normalize(x, SPEC), targets, batch_size=32, epochs=40, verbose=2)
    with tempfile.TemporaryDirectory() as tmp:
        saved = det.write_detector_saved_model(model, len(LABELS), SPEC, Path(tmp) / "sm")
        return det.export_detector(ModelFormat.DYNAMIC_INT8, saved, normalize(x[:32], SPEC))


def regenerate() -> None:  # pragma: no cover - regeneration only
    from mobiletrain.tasks.detection_synth import scenes

    FIXTURES.mkdir(parents=True, exist_ok=True)
    held_out = scenes(40, seed=99, prefix="held-out")
    # Crowded scenes of both orientations, halved (small PNG files).
    landscape = max((s for s in held_out if s.width > s.height), key=lambda s: len(s.boxes))
    portrait = max((s for s in held_out if s.height > s.width), key=lambda s: len(s.boxes))
    for name, s in zip(SCENES, (landscape, portrait), strict=True):
        with Image.open(io.BytesIO(s.jpeg)) as img:
            half = img.convert("RGB").resize(
                (s.width // 2, s.height // 2), Image.Resampling.LANCZOS
            )
            half.save(FIXTURES / name, format="PNG", optimize=True)
    model = _train_and_export()
    MODEL.write_bytes(model)
    MANIFEST.write_text(json.dumps(fixture_manifest(), indent=1) + "\n")
    truth = {
        name: [b.to_dict() for b in s.boxes]
        for name, s in zip(SCENES, (landscape, portrait), strict=True)
    }
    GOLDEN.write_text(
        json.dumps(
            {
                "description": "Raw outputs of detector-dynamic-int8.tflite in LiteRT for each "
                "scene and resize mode, the mapping (model px: sx, sy scale, px, py padding; "
                "iw, ih image size) and the detections in image pixels. Generated by "
                "tests/unit/clients/test_dart_detection_fixtures.py; do not edit by hand.",
                "ground_truth": truth,
                "cases": build_cases(model, LABELS),
            },
            indent=None,
            separators=(",", ":"),
        )
        + "\n"
    )
    print(f"wrote {FIXTURES}", file=sys.stderr)


if __name__ == "__main__":
    regenerate()
