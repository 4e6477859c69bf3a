"""Train a classifier from a :class:`TrainingRequest`, export it and evaluate every export.

Runs in the training worker process, the same stages for every task kind, each calling the
kind's hooks (``compute/keras/tasks``): **data** (decode every sample once into examples in
memory, seeded stratified split by sample; a streamed job, see ``compute/streaming.py``,
splits from the labels alone and decodes batch by batch inside tf.data), **fit** (tf.data
pipeline mapping examples to model input with augmentation for training, Keras fit with a
progress/cancellation callback and per-epoch checkpoints), **evaluate** (the Keras model on
the validation split) and **export** (every requested format, each .tflite file run in
LiteRT on the validation split exactly as a phone would run it), then the metrics and the
manifest.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute import litert
from mobiletrain.compute.checkpoints import CHECKPOINT_DIR
from mobiletrain.compute.keras import distributed, streamed
from mobiletrain.compute.keras.checkpoint import EpochCheckpoint, interval_from_env
from mobiletrain.compute.keras.export import (
    REPRESENTATIVE_SAMPLES,
    embed_manifest,
    write_saved_model,
)
from mobiletrain.compute.keras.progress import ProgressCallback, _CancelledError
from mobiletrain.compute.keras.tasks import KerasTask, TaskData, keras_task
from mobiletrain.compute.metrics import classification_report, cross_entropy
from mobiletrain.compute.protocol import (
    Reporter,
    TrainingOutput,
    TrainingRequest,
)
from mobiletrain.compute.sample_bytes import BlobSampleBytes
from mobiletrain.compute.split import stratified_split
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import (
    FormatInfo,
    ModelManifest,
    ModelOutput,
    TensorInfo,
    ValidationMetrics,
)
from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    JobPhase,
    ModelFormat,
    TaskType,
)
from mobiletrain.tasks import kind as task_kind

# Export plus evaluation time assumed per format when no earlier version measured it.
_POST_SECONDS_PER_FORMAT = 4.0
# The cosine learning-rate schedule ends at this fraction of hp.learning_rate.
_LR_FLOOR = 0.05


def _check_request(request: TrainingRequest) -> None:
    n = len(request.images)
    if len(request.labels) != n or len(request.sample_ids) != n:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "images, labels and sample_ids must have the same length"
        )
    num_classes = len(request.label_names)
    if any(not 0 <= label < num_classes for label in request.labels):
        raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "a label index is out of range")
    if len(set(request.labels)) < 2:
        raise MobiletrainError(
            ErrorCode.NOT_ENOUGH_DATA, "training needs samples of at least two labels"
        )


MAX_MISCLASSIFIED = 100
"""At most this many wrongly classified validation samples are listed in the metrics."""
# Validation examples fed to LiteRT per call (bounds the float copy of a large image set).
_EVAL_CHUNK = 256


def _misclassified(
    probabilities: np.ndarray, y_true: np.ndarray, owners: np.ndarray, data: _Data
) -> list[dict[str, Any]]:
    """The validation examples the Keras model got wrong, most confident mistakes first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    scores = probabilities[wrong, predicted[wrong]]
    names = data.task_data.label_names
    return [
        {
            "sample_id": data.sample_ids[int(owners[i])],
            "label": names[int(y_true[i])],
            "predicted": names[int(predicted[i])],
            "score": float(probabilities[i, predicted[i]]),
        }
        for i in wrong[np.argsort(-scores, kind="stable")][:MAX_MISCLASSIFIED]
    ]


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count); absent classes get 1 (they never occur)."""
    counts = np.bincount(labels, minlength=num_classes)
    present = int((counts > 0).sum())
    return {
        c: float(len(labels) / (present * counts[c])) if counts[c] else 1.0
        for c in range(num_classes)
    }


def _library_versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "ai_edge_litert": version("ai-edge-litert"),
        "mobiletrain": version("mobiletrain"),
    }


def _cancelled(split: dict[str, Any], metrics: dict[str, Any] | None = None) -> TrainingOutput:
    return TrainingOutput(
        artifacts={}, metrics=metrics or {}, split=split, manifest={}, cancelled=True
    )


def _keras_format_details(model: keras.Model, num_classes: int) -> FormatInfo:
    example: list[int | None] = [int(d) for d in model.inputs[0].shape[1:]]
    return FormatInfo.for_format(
        ModelFormat.KERAS,
        TensorInfo("float32", [None, *example]),
        TensorInfo("float32", [None, num_classes]),
    )


# --- stage 1: data ---------------------------------------------------------------------------


@dataclass
class _Data:
    """The examples and the seeded split by sample (rows index ``task_data``); a streamed job
    has ``stream`` and decodes examples on demand (``x``), its ``task_data.x`` holds one."""

    task_data: TaskData
    sample_ids: list[str]
    train_rows: np.ndarray
    val_rows: np.ndarray
    split: dict[str, Any]
    stream: streamed.Stream | None = None

    @property
    def num_classes(self) -> int:
        return len(self.task_data.label_names)

    def x(self, rows: np.ndarray) -> np.ndarray:
        """Stored examples of ``rows`` (decoded now for a streamed job: keep ``rows`` small)."""
        if self.stream is not None:
            return self.stream.decode(rows)
        return self.task_data.x[rows]

    def y(self, rows: np.ndarray) -> np.ndarray:
        return self.task_data.y[rows]


def _prepare_data(request: TrainingRequest, task: KerasTask, reporter: Reporter) -> _Data:
    """Decode every sample through the task, then split by sample (never by example, so one
    recording's windows never sit on both sides)."""
    hp = request.hyperparameters
    stream: streamed.Stream | None = None
    if isinstance(request.images, BlobSampleBytes):
        # Labels come from the metadata: the split and class weights match the in-memory path
        # (one example per sample) without decoding anything now.
        n = len(request.images)
        reporter.emit(
            EventKind.LOG, {"message": f"streaming {n} samples: decoded per batch while training"}
        )
        stream = streamed.Stream(request, task, request.images)
        data = TaskData(
            x=stream.first,
            y=np.asarray(request.labels, dtype=np.int64),
            owner=np.arange(n, dtype=np.int64),
            label_names=list(request.label_names),
        )
    else:
        reporter.emit(EventKind.LOG, {"message": f"decoding {len(request.images)} samples"})
        data = task.prepare(request)
    # One label per sample that gave examples, in sample order.
    owners, first = np.unique(data.owner, return_index=True)
    train_s, val_s = stratified_split(data.y[first].tolist(), hp.validation_split, hp.seed)
    if val_s.size == 0:
        raise MobiletrainError(
            ErrorCode.NOT_ENOUGH_DATA, "no label has the two samples a validation split needs"
        )
    train_owners, val_owners = owners[train_s], owners[val_s]
    return _Data(
        task_data=data,
        sample_ids=list(request.sample_ids),
        train_rows=np.flatnonzero(np.isin(data.owner, train_owners)),
        val_rows=np.flatnonzero(np.isin(data.owner, val_owners)),
        split={
            "seed": hp.seed,
            "validation_fraction": hp.validation_split,
            "train_ids": [request.sample_ids[i] for i in train_owners],
            "validation_ids": [request.sample_ids[i] for i in val_owners],
        },
        stream=stream,
    )


def _datasets(
    request: TrainingRequest, task: KerasTask, data: _Data, distributed: bool = False
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Stored examples -> batched model-input datasets; the task maps (and augments) per batch.

    The training set is not cached after the map: it is already in memory and a cache placed
    after shuffle/augment would freeze one order/augmentation for all epochs. Data-parallel
    training drops the last partial batch: sharded by data, it could leave a worker an empty
    batch, which fails the step.
    """
    hp = request.hyperparameters
    autotune = tf.data.AUTOTUNE
    train_map = task.batch_map(request, data.task_data, training=True)
    val_map = task.batch_map(request, data.task_data, training=False)
    if data.stream is not None:  # see compute/keras/streamed.py
        drop = distributed and len(data.train_rows) >= hp.batch_size
        cached = request.data_cache
        stream, y = data.stream, data.task_data.y
        train_ds = streamed.dataset(
            request, stream, y, data.train_rows, train_map, drop, "train" if cached else None, True
        )
        val_ds = streamed.dataset(
            request, stream, y, data.val_rows, val_map, False, "val" if cached else None, False
        )
        return train_ds, val_ds
    x_train, y_train = data.x(data.train_rows), data.y(data.train_rows)
    x_val, y_val = data.x(data.val_rows), data.y(data.val_rows)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=hp.seed, reshuffle_each_iteration=True)
        .batch(hp.batch_size, drop_remainder=distributed and len(x_train) >= hp.batch_size)
        .map(lambda x, y: (train_map(x), y), num_parallel_calls=autotune)
        .prefetch(autotune)
    )
    val = (
        tf.data.Dataset.from_tensor_slices((x_val, y_val))
        .batch(hp.batch_size)
        .map(lambda x, y: (val_map(x), y), num_parallel_calls=autotune)
        .cache()
        .prefetch(autotune)
    )
    return train, val


# --- stage 2: fit ----------------------------------------------------------------------------


@dataclass
class _Fitted:
    model: keras.Model
    history: dict[str, Any]
    train_seconds: float
    val_ds: tf.data.Dataset
    post_seconds: float


def _fit(
    request: TrainingRequest,
    task: KerasTask,
    data: _Data,
    reporter: Reporter,
    strategy: tf.distribute.Strategy | None,
) -> _Fitted | TrainingOutput:
    """Build, compile and fit (resuming from the job's checkpoint); a TrainingOutput when
    the job was cancelled or this is a non-chief worker."""
    hp = request.hyperparameters
    n_train = len(data.train_rows)
    scope = strategy.scope if strategy is not None else contextlib.nullcontext
    keras.utils.set_random_seed(hp.seed)
    with scope():
        model = task.build_model(request, data.task_data, data.train_rows, reporter)
        steps = math.ceil(n_train / hp.batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(
            hp.learning_rate, decay_steps=steps * hp.epochs, alpha=_LR_FLOOR
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    train_ds, val_ds = _datasets(request, task, data, distributed=strategy is not None)
    if strategy is not None:
        train_ds, val_ds = distributed.shard_by_data(train_ds), distributed.shard_by_data(val_ds)
        distributed.prepare_model(model, strategy)
        reporter.emit(
            EventKind.LOG,
            {"message": f"data-parallel training on {strategy.num_replicas_in_sync} workers"},
        )
    # Epoch checkpoints in the job's own folder (written so that a crash cannot tear it, see
    # compute/checkpoints.py), at most one per MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS (30 s) of
    # training: a worker killed mid-epoch is retried by the executor and resumes from the newest
    # checkpoint, with the history of every attempt. Every epoch was 3-7 % of a short epoch's time.
    checkpoint = EpochCheckpoint(
        request.work_dir / CHECKPOINT_DIR, reporter, interval_s=interval_from_env()
    )
    with scope():
        initial_epoch = checkpoint.restore(model)
    post_seconds = request.expected_post_seconds
    if post_seconds is None:  # no earlier version to learn from: a rough per-format guess
        post_seconds = _POST_SECONDS_PER_FORMAT * len(set(hp.formats))
    # Checkpoint first, then the EPOCH event: an announced epoch that was checkpointed is never
    # trained again (one after the newest checkpoint is, on a retry, and announced again).
    callbacks: list[keras.callbacks.Callback] = [
        checkpoint,
        ProgressCallback(reporter, hp.epochs, hp.batch_size, n_train, post_seconds),
    ]
    if hp.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=hp.early_stopping_patience, restore_best_weights=True
            )
        )
    reporter.emit(
        EventKind.LOG,
        {"message": f"training on {n_train} examples, validating on {len(data.val_rows)}"},
    )
    reporter.emit(EventKind.PHASE, {"phase": JobPhase.TRAINING.value, "eta_seconds": None})
    fit_start = time.monotonic()
    try:
        if not checkpoint.finished:  # an attempt killed during export has nothing to train
            y_train = data.task_data.y[data.train_rows]
            with streamed.errors(data.stream):
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=hp.epochs,
                    initial_epoch=min(initial_epoch, hp.epochs),
                    class_weight=_class_weights(y_train, data.num_classes)
                    if hp.class_weights
                    else None,
                    callbacks=callbacks,
                    shuffle=False,  # train_ds shuffles itself each epoch
                    verbose=0,
                )
            # The final weights (EarlyStopping may have restored the best ones): a retry after
            # a crash during export goes straight to the export.
            checkpoint.save(model, finished=True)
    except _CancelledError:
        return _cancelled(data.split, {"history": checkpoint.history})
    train_seconds = time.monotonic() - fit_start
    hist = checkpoint.history  # every epoch of every attempt
    if strategy is not None:
        if not distributed.is_chief(strategy):
            return TrainingOutput(
                artifacts={}, metrics={"history": hist}, split=data.split, manifest={}
            )
        model = distributed.local_copy(model)  # evaluate and export on the chief alone
    return _Fitted(model, hist, train_seconds, val_ds, post_seconds)


# --- stage 3: evaluate and export ------------------------------------------------------------


@dataclass
class _Exported:
    artifacts: dict[ModelFormat, bytes]
    tflite_metrics: dict[str, dict[str, Any]]
    formats: dict[str, FormatInfo]
    ondevice: dict[str, Any] | None
    seconds: float


def _litert_probabilities(
    runner: litert.LiteRTClassifier,
    task: KerasTask,
    request: TrainingRequest,
    data: _Data,
    rows: np.ndarray,
) -> np.ndarray:
    """What the .tflite file says for the examples ``rows``, fed as an app feeds it (chunk by
    chunk: a streamed job decodes only one chunk at a time)."""
    parts = [
        runner.predict(task.model_input(request, data.x(rows[i : i + _EVAL_CHUNK])))
        for i in range(0, len(rows), _EVAL_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _export_formats(request: TrainingRequest, reporter: Reporter) -> list[ModelFormat]:
    """The requested formats the task kind supports (de-duplicated, in request order); the
    others are skipped with a warning."""
    supported = set(task_kind(request.input_spec.task).export_formats)
    wanted = list(dict.fromkeys(request.hyperparameters.formats))
    skipped = [f.value for f in wanted if f not in supported]
    if skipped:
        reporter.emit(
            EventKind.LOG,
            {
                "level": "warning",
                "message": f"{request.input_spec.task.value} cannot export "
                f"{', '.join(skipped)}; skipped",
            },
        )
    return [f for f in wanted if f in supported]


def _export_and_verify(
    request: TrainingRequest,
    task: KerasTask,
    data: _Data,
    fitted: _Fitted,
    keras_predictions: np.ndarray,
    reporter: Reporter,
) -> _Exported | TrainingOutput:
    """Export every requested format; run each .tflite file in LiteRT on the validation
    split exactly as a phone would (builtin ops only, else INTERNAL)."""
    hp = request.hyperparameters
    model = fitted.model
    y_val = data.y(data.val_rows)
    names = data.task_data.label_names
    rng = np.random.default_rng(hp.seed)
    picked = data.train_rows[rng.permutation(len(data.train_rows))[:REPRESENTATIVE_SAMPLES]]
    representative = task.model_input(request, data.x(picked))
    artifacts: dict[ModelFormat, bytes] = {}
    tflite_metrics: dict[str, dict[str, Any]] = {}
    formats: dict[str, FormatInfo] = {}
    reporter.emit(
        EventKind.PHASE,
        {"phase": JobPhase.EXPORTING.value, "eta_seconds": round(fitted.post_seconds, 1)},
    )
    wanted = _export_formats(request, reporter)
    export_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="export-", dir=_scratch(request.work_dir)) as tmp:
        saved_model_dir = write_saved_model(model, Path(tmp) / "saved_model")
        for fmt in wanted:
            if fmt.is_on_device:
                continue  # written together below
            if reporter.should_stop():
                return _cancelled(data.split, {"history": fitted.history})
            reporter.emit(EventKind.LOG, {"message": f"exporting {fmt.value}"})
            blob = task.export(model, fmt, representative, saved_model_dir)
            artifacts[fmt] = blob
            if not fmt.is_tflite:
                formats[fmt.value] = _keras_format_details(model, data.num_classes)
                continue
            custom = litert.custom_op_names(blob)
            if custom:
                raise MobiletrainError(
                    ErrorCode.INTERNAL,
                    f"the {fmt.value} export needs non-builtin ops: {', '.join(custom)}",
                )
            runner = litert.LiteRTClassifier(blob)
            predicted = _litert_probabilities(runner, task, request, data, data.val_rows)
            report = classification_report(y_val, predicted.argmax(axis=1), data.num_classes, names)
            tflite_metrics[fmt.value] = {
                "accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "loss": cross_entropy(predicted, y_val),
                "agreement_with_keras": float(
                    np.mean(predicted.argmax(axis=1) == keras_predictions)
                ),
                "size_bytes": len(blob),
            }
            formats[fmt.value] = FormatInfo.for_format(
                fmt,
                TensorInfo.from_dict(runner.input_details()),
                TensorInfo.from_dict(runner.output_details()),
            )
    ondevice_section: dict[str, Any] | None = None
    if any(fmt.is_on_device for fmt in wanted):
        reporter.emit(EventKind.LOG, {"message": "exporting the on-device training files"})
        ondevice_section = _export_ondevice(model, request.input_spec, hp, artifacts, formats)
    return _Exported(
        artifacts, tflite_metrics, formats, ondevice_section, time.monotonic() - export_start
    )


def train_and_export(
    request: TrainingRequest,
    reporter: Reporter,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainingOutput:
    """Train, export every requested format and evaluate each export on the validation split.

    Stages, each calling the project's task kind (``compute/keras/tasks``): data (decode,
    split by sample), fit, evaluate in Keras, export and verify every file in LiteRT.
    With a multi-worker ``strategy`` (see :mod:`mobiletrain.compute.keras.distributed`) every
    worker calls this; the gradients are all-reduced, and only the chief (worker 0) goes on to
    evaluate and export — the others return an output without artifacts after ``fit``.

    Returns a :class:`TrainingOutput` whose .tflite artifacts already embed the manifest; when
    ``reporter.should_stop()`` turns true, returns ``cancelled=True`` without artifacts.
    Raises ``MobiletrainError`` for bad requests (``NOT_ENOUGH_DATA``, ``CORRUPT_IMAGE``,
    ``INVALID_HYPERPARAMETERS``, ``INVALID_INPUT_SPEC`` ...) and ``INTERNAL`` for export failures.
    ``hp.learning_rate`` is the initial rate of a cosine decay over the planned epochs.
    """
    if request.input_spec.task is TaskType.OBJECT_DETECTION:
        # A detector's targets, loss, metrics and export differ throughout: its own stages.
        from mobiletrain.compute.keras.detection_train import train_and_export as detect

        return detect(request, reporter, strategy)
    hp = request.hyperparameters
    hp.validate()  # also adds the keras format, which is always produced
    request.input_spec.validate()
    _check_request(request)
    task = keras_task(request.input_spec.task)
    # A streamed job's disk cache lives only while it trains (a crashed attempt's partial
    # cache is never read: it goes before the data stage and after the job's last step).
    streamed.remove_cache(request)
    try:
        return _train_and_export(request, task, reporter, strategy)
    finally:
        streamed.remove_cache(request)


def _train_and_export(
    request: TrainingRequest,
    task: KerasTask,
    reporter: Reporter,
    strategy: tf.distribute.Strategy | None,
) -> TrainingOutput:
    job_start = time.monotonic()
    data = _prepare_data(request, task, reporter)
    if reporter.should_stop():
        return _cancelled(data.split)
    fitted = _fit(request, task, data, reporter, strategy)
    if isinstance(fitted, TrainingOutput):
        return fitted

    # Keras reference quality on the validation split.
    y_val = data.y(data.val_rows)
    names = data.task_data.label_names
    with streamed.errors(data.stream):
        probabilities = np.asarray(fitted.model.predict(fitted.val_ds, verbose=0))
    keras_predictions = probabilities.argmax(axis=1)
    keras_report = classification_report(y_val, keras_predictions, data.num_classes, names)
    keras_report["loss"] = cross_entropy(probabilities, y_val)
    misclassified = _misclassified(probabilities, y_val, data.task_data.owner[data.val_rows], data)

    exported = _export_and_verify(request, task, data, fitted, keras_predictions, reporter)
    if isinstance(exported, TrainingOutput):
        return exported
    output = _finish(request, task, data, fitted, exported, keras_report, misclassified, job_start)
    reporter.emit(EventKind.EVALUATION, output.metrics)
    return output


def _finish(
    request: TrainingRequest,
    task: KerasTask,
    data: _Data,
    fitted: _Fitted,
    exported: _Exported,
    keras_report: dict[str, Any],
    misclassified: list[dict[str, Any]],
    job_start: float,
) -> TrainingOutput:
    """Metrics and the manifest (embedded in every .tflite file)."""
    hp = request.hyperparameters
    names = list(data.task_data.label_names)
    n_train, n_val = len(data.train_rows), len(data.val_rows)
    # Top level: the Keras model on the validation split (the shape both transports read);
    # "tflite" holds the same measure for every exported file, run in LiteRT.
    metrics: dict[str, Any] = {
        "accuracy": keras_report["accuracy"],
        "loss": keras_report["loss"],
        "macro_f1": keras_report["macro_f1"],
        "labels": names,
        "per_class": keras_report["per_class"],
        "confusion_matrix": keras_report["confusion_matrix"],
        "misclassified": misclassified,
        "tflite": exported.tflite_metrics,
        "history": fitted.history,
        "epochs_run": len(fitted.history["loss"]),
        "train_seconds": round(fitted.train_seconds, 3),
        "export_seconds": round(exported.seconds, 3),
        "total_seconds": round(time.monotonic() - job_start, 3),
        "num_train": n_train,
        "num_validation": n_val,
    }
    accuracies = {"keras": keras_report["accuracy"]}
    accuracies.update({name: m["accuracy"] for name, m in exported.tflite_metrics.items()})
    manifest = ModelManifest(
        task=request.input_spec.task.value,
        labels=names,
        input=task.manifest_input(request, fitted.model),
        inputs=task.manifest_inputs(request, fitted.model),
        task_spec=task.manifest_task_spec(request, fitted.model),
        output=ModelOutput(num_classes=data.num_classes),
        formats=exported.formats,
        validation=ValidationMetrics(accuracies, n_train, n_val),
        hyperparameters=hp.to_dict(),
        library_versions=_library_versions(),
        extra={"ondevice": exported.ondevice} if exported.ondevice is not None else {},
    ).to_dict()
    artifacts = exported.artifacts
    for fmt, blob in artifacts.items():
        if fmt.is_tflite:
            artifacts[fmt] = embed_manifest(blob, manifest)
    return TrainingOutput(artifacts=artifacts, metrics=metrics, split=data.split, manifest=manifest)


def _export_ondevice(
    model: keras.Model,
    spec: InputSpec,
    hp: Hyperparameters,
    artifacts: dict[ModelFormat, bytes],
    formats: dict[str, FormatInfo],
) -> dict[str, Any]:
    """Add the requested on-device files: the trained model minus its head as the feature
    extractor, and its last dense layer as the head an app fine-tunes."""
    from mobiletrain.compute.keras.ondevice import export_ondevice, feature_extractor_of, head_of

    head, weights = head_of(model, batch_size=min(hp.batch_size, 64))
    result = export_ondevice(
        spec, head, weights, feature_extractor_of(model), classifier=False, seed=hp.seed
    )
    for fmt, data in result.files.items():
        if fmt in hp.formats:
            artifacts[fmt] = data
            formats[fmt.value] = FormatInfo.for_format(fmt)
    return result.manifest


def _scratch(work_dir: Path) -> str:
    work_dir.mkdir(parents=True, exist_ok=True)
    return str(work_dir)
