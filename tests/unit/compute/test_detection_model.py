"""The detector's TensorFlow parts: targets, box-aware augmentation, post-processing, export."""

from __future__ import annotations

import numpy as np
import pytest

from mobiletrain.compute import litert
from mobiletrain.compute.detection_eval import LiteRTDetector
from mobiletrain.compute.keras.tasks import detection as det
from mobiletrain.core.types import DetectionSpec, Hyperparameters, InputSpec, ModelFormat
from mobiletrain.tasks.detection import OUTPUT_NAMES

SPEC = InputSpec(width=64, height=48, task_spec=DetectionSpec(max_detections=5))


def test_targets_put_one_peak_per_box() -> None:
    boxes = [np.asarray([[1, 0.0, 0.0, 0.5, 0.5], [0, 0.5, 0.5, 1.0, 1.0]], np.float32)]
    t = det.encode_targets(boxes, SPEC, num_classes=2)
    assert t.shape == (1, 6, 8, 7)
    assert (t[0, :, :, 1] == 1.0).sum() == 1 and t[0, 1, 2, 1] == 1.0  # centre (0.25, 0.25)
    assert t[0, 1, 2, 2:4].tolist() == [0.5, 0.5]  # width, height
    assert t[0, 1, 2, 6] == 1.0 and t[..., 6].sum() == 2  # one centre per box


def test_augmentation_moves_boxes_with_the_pixels() -> None:
    """A white square on black: after flips and zooms, the box still frames the white pixels."""
    rng = np.random.default_rng(0)
    images = np.zeros((16, 48, 64, 3), np.uint8)
    images[:, 12:30, 8:26] = 255  # y 0.25..0.625, x 0.125..0.406
    box = np.asarray([[0, 8 / 64, 12 / 48, 26 / 64, 30 / 48]], np.float32)
    pixels, moved = det.augment_batch(images, [box] * 16, rng)
    checked = 0
    for img, b in zip(pixels, moved, strict=True):
        bright = img.mean(axis=2) > 180
        if not len(b) or not bright.any():
            continue
        ys, xs = np.nonzero(bright)
        _, x0, y0, x1, y1 = b[0]
        # Within 2 pixels (resampling blurs the edges).
        assert abs(xs.min() / 64 - x0) < 3 / 64 and abs((xs.max() + 1) / 64 - x1) < 3 / 64
        assert abs(ys.min() / 48 - y0) < 3 / 48 and abs((ys.max() + 1) / 48 - y1) < 3 / 48
        checked += 1
    assert checked >= 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[ModelFormat, bytes]:
    model = det.build_detector(SPEC, 2, Hyperparameters())
    saved = det.write_detector_saved_model(model, 2, SPEC, tmp_path_factory.mktemp("d") / "sm")
    rep = np.random.default_rng(0).random((8, 48, 64, 3), dtype=np.float32)
    return {f: det.export_detector(f, saved, rep) for f in (ModelFormat.FLOAT32, ModelFormat.INT8)}


@pytest.mark.parametrize("fmt", [ModelFormat.FLOAT32, ModelFormat.INT8])
def test_export_has_builtin_ops_and_ordered_outputs(
    exported: dict[ModelFormat, bytes], fmt: ModelFormat
) -> None:
    blob = exported[fmt]
    assert litert.custom_op_names(blob) == []
    runner = LiteRTDetector(blob)
    outs = runner.output_details()
    assert [o["name"] for o in outs] == list(OUTPUT_NAMES)
    assert [o["shape"] for o in outs] == [[1, 5, 4], [1, 5], [1, 5], [1]]
    assert all(o["dtype"] == "float32" for o in outs)
    assert runner.input_details()["dtype"] == ("uint8" if fmt is ModelFormat.INT8 else "float32")
    found = runner.detect(np.random.default_rng(1).random((2, 48, 64, 3), dtype=np.float32))
    assert found.boxes.shape == (2, 5, 4) and found.count.shape == (2,)
    assert ((found.count >= 0) & (found.count <= 5)).all()
    assert ((found.boxes >= 0) & (found.boxes <= 1)).all()
