"""Run exported detectors in LiteRT and score detections with COCO mAP (no TensorFlow).

:class:`LiteRTDetector` feeds images as an app does (float32 normalised, or quantised into a
uint8 input with the tensor's scale and zero point) and reads the four outputs by position
(boxes, classes, scores, count). :func:`coco_metrics` computes mAP@0.5 and COCO
mAP@[.5:.95], overall and per class, with pycocotools on the model input's pixel grid.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter


@dataclass
class Detections:
    """Detections of M images: ``boxes`` (M, N, 4) as y_min, x_min, y_max, x_max normalised,
    ``classes`` and ``scores`` (M, N), ``count`` (M,)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    count: np.ndarray

    def of(self, i: int, labels: Sequence[str]) -> list[dict[str, Any]]:
        """Image ``i``'s detections as JSON boxes ``{label, score, x_min, y_min, x_max, y_max}``."""
        out: list[dict[str, Any]] = []
        for j in range(int(self.count[i])):
            cls = int(self.classes[i, j])
            y0, x0, y1, x1 = (float(v) for v in self.boxes[i, j])
            out.append(
                {
                    "label": labels[cls] if 0 <= cls < len(labels) else str(cls),
                    "score": round(float(self.scores[i, j]), 4),
                    "x_min": round(x0, 4),
                    "y_min": round(y0, 4),
                    "x_max": round(x1, 4),
                    "y_max": round(y1, 4),
                }
            )
        return out


class LiteRTDetector:
    """A loaded .tflite detector with the four outputs in the documented order."""

    def __init__(self, model_bytes: bytes, num_threads: int | None = None) -> None:
        self._interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._outputs = self._interpreter.get_output_details()
        if len(self._outputs) != 4:
            raise ValueError(f"a detector has 4 outputs, this model has {len(self._outputs)}")

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The input shape without the batch dimension."""
        return tuple(int(v) for v in self._input["shape"][1:])

    def input_details(self) -> dict[str, Any]:
        """``{name, dtype, shape, quantization}`` of the input (as LiteRTClassifier's)."""
        from mobiletrain.compute.litert import _tensor_summary

        return _tensor_summary(self._input)

    def output_details(self) -> list[dict[str, Any]]:
        """The four outputs, in order."""
        from mobiletrain.compute.litert import _tensor_summary

        return [_tensor_summary(o) for o in self._outputs]

    def _feed(self, image: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype.kind == "f":
            return image.astype(dtype)[np.newaxis]
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        quantized = np.clip(np.round(image / np.float32(scale)) + zero_point, info.min, info.max)
        return quantized.astype(dtype)[np.newaxis]

    def detect(self, model_input: np.ndarray) -> Detections:
        """Detections for float32 model input ``(M, H, W, C)`` (normalised per the spec)."""
        values = np.asarray(model_input, dtype=np.float32)
        if values.shape[1:] != self.example_shape:
            raise ValueError(
                f"input of shape {list(values.shape[1:])} does not match the model's "
                f"{list(self.example_shape)}"
            )
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for image in values:
            self._interpreter.set_tensor(self._input["index"], self._feed(image))
            self._interpreter.invoke()
            for k, out in enumerate(self._outputs):
                parts[k].append(self._interpreter.get_tensor(out["index"]).astype(np.float32))
        n = int(self._outputs[1]["shape"][-1])
        if not len(values):
            return Detections(np.zeros((0, n, 4)), np.zeros((0, n)), np.zeros((0, n)), np.zeros(0))
        return Detections(
            np.concatenate(parts[0]),
            np.concatenate(parts[1]),
            np.concatenate(parts[2]),
            np.concatenate(parts[3]).reshape(-1),
        )


def coco_metrics(
    truth: Sequence[np.ndarray],
    detections: Detections,
    labels: Sequence[str],
    width: int,
    height: int,
) -> dict[str, Any]:
    """COCO box mAP of ``detections`` against ``truth`` (per image, float rows ``class,
    x_min, y_min, x_max, y_max`` normalised), on a ``width`` x ``height`` pixel grid.

    Returns ``{"map50", "map50_95", "per_class": [{label, ap50, ap50_95, num_gt,
    num_detections}]}``; a class without ground-truth boxes has ``ap*`` None and does not count
    in the means (as in COCO).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1, "width": width, "height": height} for i in range(len(truth))]
    annotations: list[dict[str, Any]] = []
    for i, rows in enumerate(truth):
        for cls, x0, y0, x1, y1 in np.asarray(rows, dtype=np.float64).reshape(-1, 5):
            w, h = (x1 - x0) * width, (y1 - y0) * height
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": [x0 * width, y0 * height, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    results: list[dict[str, Any]] = []
    for i in range(len(truth)):
        for j in range(int(detections.count[i])):
            y0, x0, y1, x1 = (float(v) for v in detections.boxes[i, j])
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(detections.classes[i, j]) + 1,
                    "bbox": [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height],
                    "score": float(detections.scores[i, j]),
                }
            )
    gt_counts = np.bincount(
        [a["category_id"] - 1 for a in annotations], minlength=len(labels)
    ).tolist()
    dt_counts = np.bincount(
        [r["category_id"] - 1 for r in results if 0 < r["category_id"] <= len(labels)],
        minlength=len(labels),
    ).tolist()
    per_class: list[dict[str, Any]] = [
        {
            "label": name,
            "ap50": None,
            "ap50_95": None,
            "num_gt": int(gt_counts[k]),
            "num_detections": int(dt_counts[k]),
        }
        for k, name in enumerate(labels)
    ]
    if not annotations:
        return {"map50": None, "map50_95": None, "per_class": per_class}
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(labels)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    if not results:
        for row in per_class:
            if row["num_gt"]:
                row["ap50"] = row["ap50_95"] = 0.0
        return {"map50": 0.0, "map50_95": 0.0, "per_class": per_class}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    # precision: [IoU thresholds (.5:.95), recall points, classes, area ranges, max dets]
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    ap50: list[float] = []
    ap: list[float] = []
    for k, row in enumerate(per_class):
        if not row["num_gt"]:
            continue
        at_50 = precision[0, :, k]
        every = precision[:, :, k]
        row["ap50"] = round(float(np.mean(at_50[at_50 > -1])) if (at_50 > -1).any() else 0.0, 4)
        row["ap50_95"] = round(float(np.mean(every[every > -1])) if (every > -1).any() else 0.0, 4)
        ap50.append(row["ap50"])
        ap.append(row["ap50_95"])
    return {
        "map50": round(float(np.mean(ap50)), 4),
        "map50_95": round(float(np.mean(ap)), 4),
        "per_class": per_class,
    }
