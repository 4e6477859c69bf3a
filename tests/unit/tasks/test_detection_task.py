"""Object detection's TensorFlow-free parts: the spec, the kind, the scenes, COCO metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mobiletrain.compute.detection_eval import Detections, coco_metrics
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import DetectionSpec, InputSpec, TaskType
from mobiletrain.core.validation import Limits
from mobiletrain.tasks import detection_synth, kind, parse_task, spec_for
from mobiletrain.tasks.detection import NO_BOXES_LABEL


def test_names_and_default_spec() -> None:
    assert parse_task("detection") is TaskType.OBJECT_DETECTION
    assert parse_task("object-detection") is TaskType.OBJECT_DETECTION
    spec = spec_for(TaskType.OBJECT_DETECTION, None)
    assert spec.task is TaskType.OBJECT_DETECTION
    assert (spec.width, spec.height) == (160, 160)
    assert spec.task_spec == DetectionSpec(10, 0.25, 0.5)
    assert NO_BOXES_LABEL in kind(TaskType.OBJECT_DETECTION).reserved_labels
    # Round trip through the JSON the stores and REST use.
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["detection"] == {
        "max_detections": 10,
        "score_threshold": 0.25,
        "iou_threshold": 0.5,
    }


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"max_detections": 0}, "max_detections"),
        ({"max_detections": 101}, "max_detections"),
        ({"score_threshold": 1.0}, "score_threshold"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
    ],
)
def test_bad_detection_settings(settings: dict[str, float], fragment: str) -> None:
    spec = InputSpec(width=160, height=160, task_spec=DetectionSpec(**settings))  # type: ignore[arg-type]
    with pytest.raises(MobiletrainError) as err:
        kind(TaskType.OBJECT_DETECTION).check_spec(spec)
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC and fragment in err.value.message


def test_spec_checks() -> None:
    k = kind(TaskType.OBJECT_DETECTION)
    # An image spec without detection settings gets the defaults.
    assert k.check_spec(InputSpec(width=96, height=128)).task_spec == DetectionSpec()
    with pytest.raises(MobiletrainError) as err:
        k.check_spec(InputSpec(width=100, height=96))
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC and "multiple of 8" in err.value.message


def test_sample_size_follows_exif_orientation() -> None:
    """Boxes are relative to the upright image: a 90-degree EXIF orientation swaps the size."""
    image = Image.new("RGB", (64, 32), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    spec = spec_for(TaskType.OBJECT_DETECTION, None)
    info = kind(TaskType.OBJECT_DETECTION).validate_sample(buffer.getvalue(), spec, Limits())
    assert (info.width, info.height) == (32, 64)


def test_scenes_are_seeded_with_boxes_inside() -> None:
    first = detection_synth.scenes(6, seed=3)
    again = detection_synth.scenes(6, seed=3)
    other = detection_synth.scenes(6, seed=4)
    assert [s.jpeg for s in first] == [s.jpeg for s in again]
    assert [s.jpeg for s in first] != [s.jpeg for s in other]
    for scene in first:
        with Image.open(io.BytesIO(scene.jpeg)) as img:
            assert img.size == (scene.width, scene.height)
        for b in scene.boxes:
            assert b.label in detection_synth.LABELS
            assert 0 <= b.x_min < b.x_max <= 1 and 0 <= b.y_min < b.y_max <= 1
    doc = detection_synth.coco_document(first)
    assert len(doc["annotations"]) == sum(len(s.boxes) for s in first)  # type: ignore[arg-type]


def _detections(rows: list[list[tuple[int, float, float, float, float, float]]]) -> Detections:
    n = 10
    boxes = np.zeros((len(rows), n, 4), np.float32)
    classes = np.zeros((len(rows), n), np.float32)
    scores = np.zeros((len(rows), n), np.float32)
    for i, found in enumerate(rows):
        for j, (cls, score, x0, y0, x1, y1) in enumerate(found):
            boxes[i, j] = (y0, x0, y1, x1)
            classes[i, j], scores[i, j] = cls, score
    return Detections(boxes, classes, scores, np.asarray([len(r) for r in rows], np.float32))


def test_coco_metrics() -> None:
    truth = [
        np.asarray([[0, 0.1, 0.1, 0.4, 0.4], [1, 0.5, 0.5, 0.9, 0.9]], np.float32),
        np.asarray([[0, 0.2, 0.2, 0.6, 0.5]], np.float32),
    ]
    labels = ["a", "b", "c"]
    perfect = _detections(
        [
            [(0, 0.9, 0.1, 0.1, 0.4, 0.4), (1, 0.8, 0.5, 0.5, 0.9, 0.9)],
            [(0, 0.7, 0.2, 0.2, 0.6, 0.5)],
        ]
    )
    report = coco_metrics(truth, perfect, labels, 160, 160)
    assert report["map50"] == pytest.approx(1.0) and report["map50_95"] == pytest.approx(1.0)
    assert [c["num_gt"] for c in report["per_class"]] == [2, 1, 0]
    assert report["per_class"][2]["ap50"] is None  # no ground truth: not counted
    # A box shifted to IoU ~0.6 counts at 0.5 but not at the strict thresholds; a wrong class
    # never counts.
    shifted = _detections(
        [
            [(0, 0.9, 0.15, 0.15, 0.45, 0.45), (2, 0.8, 0.5, 0.5, 0.9, 0.9)],
            [(0, 0.7, 0.2, 0.2, 0.6, 0.5)],
        ]
    )
    report = coco_metrics(truth, shifted, labels, 160, 160)
    per_class = {c["label"]: c for c in report["per_class"]}
    assert per_class["a"]["ap50"] == pytest.approx(1.0)
    assert per_class["a"]["ap50_95"] < 0.9
    assert per_class["b"]["ap50"] == 0.0
    nothing = coco_metrics(truth, _detections([[], []]), labels, 160, 160)
    assert nothing["map50"] == 0.0


def test_server_predict_refuses_detectors_clearly() -> None:
    """Predict's probabilities cannot carry boxes: a stable code, not a misread output."""
    from mobiletrain.compute.predictor import LiteRTPredictor

    spec = spec_for(TaskType.OBJECT_DETECTION, None)
    jpeg = detection_synth.scenes(1, seed=5)[0].jpeg
    with pytest.raises(MobiletrainError) as err:
        LiteRTPredictor().predict("det-v1", lambda: b"not loaded", spec, jpeg)
    assert err.value.code is ErrorCode.UNSUPPORTED_TASK
    assert "detection_boxes" in err.value.message
