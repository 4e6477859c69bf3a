"""Train an object detector from a :class:`TrainingRequest`, export it, score every export.

The detection counterpart of :mod:`mobiletrain.compute.keras.train` (which hands detection
jobs over here), with the same stages and the same events: **data** (decode every image once
to the input size, boxes to arrays, a seeded split stratified by each image's server-set
label), **fit** (box-aware augmentation and target encoding per batch, the CenterNet loss,
epoch checkpoints, progress and cancellation), **evaluate** (the Keras network with the
same post-processing on the validation split: COCO mAP) and **export** (every requested
format; each .tflite file runs in LiteRT on the validation split as a phone runs it and gets
its own mAP), then the metrics and the manifest.

Metric keys (``ModelVersion.metrics``): ``task`` ("object-detection"); ``detection``:
{``map50``, ``map50_95``, ``per_class`` [{label, ap50, ap50_95, num_gt, num_detections}] of
the Keras model, ``tflite`` {format: the same for each file run in LiteRT, plus
``size_bytes``}, the thresholds}; ``detection_examples`` (up to 12 validation images:
{sample_id, ground_truth [boxes], detections [boxes with score]} from the float32 file);
``tflite`` {format: {map50, map50_95, size_bytes}}; ``labels``, ``history``, timings and
counts as for classification. There is no ``accuracy``.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute import litert
from mobiletrain.compute.checkpoints import CHECKPOINT_DIR
from mobiletrain.compute.detection_eval import LiteRTDetector, coco_metrics
from mobiletrain.compute.keras.checkpoint import EpochCheckpoint, interval_from_env
from mobiletrain.compute.keras.export import REPRESENTATIVE_SAMPLES, embed_manifest, export_keras
from mobiletrain.compute.keras.progress import ProgressCallback, _CancelledError
from mobiletrain.compute.keras.tasks import detection as det
from mobiletrain.compute.preprocess import decode_image, normalize
from mobiletrain.compute.protocol import Reporter, TrainingOutput, TrainingRequest
from mobiletrain.compute.split import stratified_split
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import (
    FormatInfo,
    ModelManifest,
    ModelOutput,
    TensorInfo,
    ValidationMetrics,
)
from mobiletrain.core.types import EventKind, InputSpec, JobPhase, ModelFormat
from mobiletrain.tasks.detection import NO_BOXES_LABEL, detection_spec

MAX_EXAMPLES = 12
"""Validation images listed with their ground truth and detections in the metrics."""
_LR_FLOOR = 0.05
_POST_SECONDS_PER_FORMAT = 6.0


def _decode(request: TrainingRequest) -> np.ndarray:
    spec = request.input_spec
    out = np.empty((len(request.images), spec.height, spec.width, spec.channels), np.uint8)
    for i, (sample_id, data) in enumerate(zip(request.sample_ids, request.images, strict=True)):
        try:
            out[i] = decode_image(data, spec)
        except MobiletrainError as exc:
            raise MobiletrainError(
                exc.code, f"sample {sample_id} could not be decoded", sample_id=sample_id
            ) from None
    return out


def _classes(request: TrainingRequest) -> list[str]:
    classes = [name for name in request.label_names if name != NO_BOXES_LABEL]
    if not classes:
        raise MobiletrainError(
            ErrorCode.NOT_ENOUGH_DATA, "training a detector needs images with boxes"
        )
    return classes


def _boxes(request: TrainingRequest, classes: list[str]) -> list[np.ndarray]:
    if request.boxes is None or len(request.boxes) != len(request.images):
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "a detection job needs the boxes of every image"
        )
    index = {name: i for i, name in enumerate(classes)}
    return [det.boxes_array(b, index) for b in request.boxes]


def _split(request: TrainingRequest) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    hp = request.hyperparameters
    train, val = stratified_split(request.labels, hp.validation_split, hp.seed)
    if val.size == 0 or train.size == 0:
        raise MobiletrainError(
            ErrorCode.NOT_ENOUGH_DATA, "not enough images for a training and a validation split"
        )
    split = {
        "seed": hp.seed,
        "validation_fraction": hp.validation_split,
        "train_ids": [request.sample_ids[i] for i in train],
        "validation_ids": [request.sample_ids[i] for i in val],
    }
    return train, val, split


def _cancelled(split: dict[str, Any], metrics: dict[str, Any] | None = None) -> TrainingOutput:
    return TrainingOutput(
        artifacts={}, metrics=metrics or {}, split=split, manifest={}, cancelled=True
    )


def train_and_export(
    request: TrainingRequest, reporter: Reporter, strategy: tf.distribute.Strategy | None = None
) -> TrainingOutput:
    """Train, export and evaluate a detector (see the module docs); errors as
    :func:`mobiletrain.compute.keras.train.train_and_export`."""
    from mobiletrain.compute.keras.train import _export_formats, _library_versions

    hp = request.hyperparameters
    hp.validate()
    spec = request.input_spec
    spec.validate()
    detection = detection_spec(spec)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        raise MobiletrainError(
            ErrorCode.INVALID_HYPERPARAMETERS, "object detection trains on one worker"
        )
    job_start = time.monotonic()
    classes = _classes(request)
    num_classes = len(classes)
    reporter.emit(EventKind.LOG, {"message": f"decoding {len(request.images)} images"})
    images = _decode(request)
    boxes = _boxes(request, classes)
    train, val, split = _split(request)
    if reporter.should_stop():
        return _cancelled(split)

    # --- fit
    keras.utils.set_random_seed(hp.seed)
    model = det.build_detector(spec, num_classes, hp, reporter)
    steps = math.ceil(len(train) / hp.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        hp.learning_rate, decay_steps=max(1, steps * hp.epochs), alpha=_LR_FLOOR
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=det.make_loss(num_classes))
    batches = det.DetectionBatches(
        images[train], [boxes[i] for i in train], spec, num_classes, hp.batch_size, hp.seed
    )
    x_val = normalize(images[val], spec)
    y_val = det.encode_targets([boxes[i] for i in val], spec, num_classes)
    # At most one per MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS, as classification jobs (train.py).
    checkpoint = EpochCheckpoint(
        request.work_dir / CHECKPOINT_DIR, reporter, interval_s=interval_from_env()
    )
    initial_epoch = checkpoint.restore(model)
    wanted = _export_formats(request, reporter)
    post_seconds = request.expected_post_seconds
    if post_seconds is None:
        post_seconds = _POST_SECONDS_PER_FORMAT * len(wanted)
    callbacks: list[keras.callbacks.Callback] = [
        checkpoint,
        ProgressCallback(reporter, hp.epochs, hp.batch_size, len(train), post_seconds),
    ]
    if hp.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=hp.early_stopping_patience, restore_best_weights=True
            )
        )
    reporter.emit(
        EventKind.LOG,
        {"message": f"training a detector on {len(train)} images, validating on {len(val)}"},
    )
    reporter.emit(EventKind.PHASE, {"phase": JobPhase.TRAINING.value, "eta_seconds": None})
    fit_start = time.monotonic()
    try:
        if not checkpoint.finished:
            model.fit(
                batches,
                validation_data=(x_val, y_val),
                batch_size=hp.batch_size,
                epochs=hp.epochs,
                initial_epoch=min(initial_epoch, hp.epochs),
                callbacks=callbacks,
                verbose=0,
            )
            checkpoint.save(model, finished=True)
    except _CancelledError:
        return _cancelled(split, {"history": checkpoint.history})
    train_seconds = time.monotonic() - fit_start

    # --- evaluate the Keras model (same post-processing as the files)
    truth = [boxes[i] for i in val]
    keras_found = det.keras_detections(model, x_val, num_classes, spec)
    keras_report = coco_metrics(truth, keras_found, classes, spec.width, spec.height)

    # --- export and score every file in LiteRT
    reporter.emit(
        EventKind.PHASE,
        {"phase": JobPhase.EXPORTING.value, "eta_seconds": round(post_seconds, 1)},
    )
    rng = np.random.default_rng(hp.seed)
    representative = normalize(
        images[train][rng.permutation(len(train))[:REPRESENTATIVE_SAMPLES]], spec
    )
    artifacts: dict[ModelFormat, bytes] = {}
    tflite_metrics: dict[str, dict[str, Any]] = {}
    formats: dict[str, FormatInfo] = {}
    examples_from: tuple[str, Any] = ("keras", keras_found)
    export_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="export-", dir=_scratch(request.work_dir)) as tmp:
        saved = det.write_detector_saved_model(model, num_classes, spec, Path(tmp) / "saved")
        for fmt in wanted:
            if reporter.should_stop():
                return _cancelled(split, {"history": checkpoint.history})
            reporter.emit(EventKind.LOG, {"message": f"exporting {fmt.value}"})
            if fmt is ModelFormat.KERAS:
                artifacts[fmt] = export_keras(model)
                formats[fmt.value] = FormatInfo.for_format(
                    fmt,
                    TensorInfo("float32", [None, spec.height, spec.width, spec.channels]),
                    TensorInfo("float32", [None, *(int(d) for d in model.outputs[0].shape[1:])]),
                )
                continue
            blob = det.export_detector(fmt, saved, representative)
            custom = litert.custom_op_names(blob)
            if custom:
                raise MobiletrainError(
                    ErrorCode.INTERNAL,
                    f"the {fmt.value} export needs non-builtin ops: {', '.join(custom)}",
                )
            runner = LiteRTDetector(blob)
            found = runner.detect(x_val)
            report = coco_metrics(truth, found, classes, spec.width, spec.height)
            tflite_metrics[fmt.value] = {**report, "size_bytes": len(blob)}
            if fmt is ModelFormat.FLOAT32 or examples_from[0] == "keras":
                examples_from = (fmt.value, found)
            artifacts[fmt] = blob
            formats[fmt.value] = FormatInfo.for_format(
                fmt,
                TensorInfo.from_dict(runner.input_details()),
                TensorInfo.from_dict(runner.output_details()[0]),
            )
    export_seconds = time.monotonic() - export_start

    # --- metrics and manifest
    source, found = examples_from
    examples = [
        {
            "sample_id": request.sample_ids[int(i)],
            "ground_truth": [
                {
                    "label": classes[int(c)],
                    "x_min": round(float(x0), 4),
                    "y_min": round(float(y0), 4),
                    "x_max": round(float(x1), 4),
                    "y_max": round(float(y1), 4),
                }
                for c, x0, y0, x1, y1 in boxes[int(i)]
            ],
            "detections": found.of(k, classes),
        }
        for k, i in enumerate(val[:MAX_EXAMPLES])
    ]
    detection_metrics: dict[str, Any] = {
        **keras_report,
        "tflite": tflite_metrics,
        "iou_threshold": detection.iou_threshold,
        "score_threshold": detection.score_threshold,
        "measured_at": f"{spec.width}x{spec.height} model input pixels",
    }
    metrics: dict[str, Any] = {
        "task": spec.task.value,
        "detection": detection_metrics,
        "detection_examples": examples,
        "detection_examples_source": source,
        "labels": classes,
        # The files' size and mAP@0.5, where classification keeps each file's accuracy.
        "tflite": {
            name: {"map50": m["map50"], "map50_95": m["map50_95"], "size_bytes": m["size_bytes"]}
            for name, m in tflite_metrics.items()
        },
        "history": checkpoint.history,
        "epochs_run": len(checkpoint.history["loss"]),
        "train_seconds": round(train_seconds, 3),
        "export_seconds": round(export_seconds, 3),
        "total_seconds": round(time.monotonic() - job_start, 3),
        "num_train": len(train),
        "num_validation": len(val),
        "num_train_boxes": int(sum(len(boxes[i]) for i in train)),
        "num_validation_boxes": int(sum(len(boxes[i]) for i in val)),
    }
    map50 = {"keras": keras_report["map50"] or 0.0}
    map50.update({name: m["map50"] or 0.0 for name, m in tflite_metrics.items()})
    manifest = ModelManifest(
        task=spec.task.value,
        labels=classes,
        input=spec.to_dict(),
        inputs=[],
        outputs=det.manifest_outputs(detection),
        task_spec=_manifest_task_spec(spec),
        output=ModelOutput(
            kind="detection",
            num_classes=num_classes,
            extra={"max_detections": detection.max_detections},
        ),
        formats=formats,
        validation=ValidationMetrics({}, len(train), len(val), extra={"validation_map50": map50}),
        hyperparameters=hp.to_dict(),
        library_versions=_library_versions(),
    ).to_dict()
    for fmt, blob in artifacts.items():
        if fmt.is_tflite:
            artifacts[fmt] = embed_manifest(blob, manifest)
    output = TrainingOutput(artifacts=artifacts, metrics=metrics, split=split, manifest=manifest)
    reporter.emit(EventKind.EVALUATION, metrics)
    return output


def _manifest_task_spec(spec: InputSpec) -> dict[str, Any]:
    detection = detection_spec(spec)
    rows, cols = det.grid_shape(spec)
    return {
        **detection.to_dict(),
        "box_format": "y_min, x_min, y_max, x_max normalised 0..1",
        "postprocess": "inside the model: heatmap peaks (3x3 max pool), top-k, class-aware "
        "non-maximum suppression (NON_MAX_SUPPRESSION_V4)",
        "architecture": "centre-point (CenterNet-style) single-shot detector",
        "grid": [rows, cols],
        "stride": det.STRIDE,
        "int8": "uint8 image input (scale and zero point in formats.int8.input); the four "
        "outputs stay float32",
    }


def _scratch(work_dir: Path) -> str:
    work_dir.mkdir(parents=True, exist_ok=True)
    return str(work_dir)
