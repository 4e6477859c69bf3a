"""The worker's release step: the fixed evaluation set, LiteRT evaluation, the gate, the card.

Runs in the training worker after :func:`~mobiletrain.compute.keras.train.train_and_export`.
The rules live in :mod:`mobiletrain.core.release`; this module feeds them real numbers:

1. :func:`split_eval_set` records which samples form the project's fixed evaluation set
   (assigned once, never moved) and keeps them out of training.
2. :func:`publish_version` runs every exported classifier ``.tflite`` of the new version in
   LiteRT on that set, and the current version's files on the very same samples (re-run here
   rather than reusing a stored score: the set may have grown since, and old versions have
   no stored score), lets :func:`~mobiletrain.core.release.decide` apply the project's policy,
   writes the model card into every ``.tflite``, stores the version as ``released`` (current)
   or ``candidate``, and records the decision as a RELEASE event on the job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mobiletrain.compute import streaming
from mobiletrain.compute.metrics import classification_report
from mobiletrain.compute.protocol import TrainingOutput
from mobiletrain.compute.sample_bytes import (
    BlobSampleBytes,
    Skipped,
    read_sample_bytes,
    skipped_event,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.evaluation import (
    ClassScore,
    EvalCandidate,
    EvalSetInfo,
    Evaluation,
    FormatScore,
    assign_eval_set,
    eval_set_snapshot,
)
from mobiletrain.core.manifest import DataSnapshot, FileInfo, ModelManifest, manifest_of
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.release import (
    ReleaseAction,
    ReleaseDecision,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
    VersionStatus,
    chance_warning,
    decide,
)
from mobiletrain.core.types import (
    TFLITE_FORMATS,
    Artifact,
    EventKind,
    InputSpec,
    Job,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
    TaskType,
)
from mobiletrain.tasks import kind as task_kind

log = logging.getLogger("mobiletrain.worker")

GATE_ACTOR = "release gate"


def split_eval_set(store: MetadataStore, project: Project, samples: list[Sample]) -> list[Sample]:
    """Assign new samples to the evaluation set (recorded in the store); return the samples
    that may train (those not in the set)."""
    if project.task is TaskType.OBJECT_DETECTION:
        # A detector is scored by COCO mAP on its job's validation split; the fixed evaluation
        # set scores classifiers, so detection holds no samples back for it.
        return list(samples)
    assignments = assign_eval_set(
        project.id,
        [EvalCandidate(s.id, s.label, s.sha256, s.in_eval_set) for s in samples],
    )
    if assignments:
        store.assign_eval_set(project.id, assignments)
        # Another worker may have assigned some first; what is stored wins.
        stored = {s.id: s.in_eval_set for s in store.all_samples(project.id)}
        for s in samples:
            s.in_eval_set = stored.get(s.id, s.in_eval_set)
    return [s for s in samples if not s.in_eval_set]


_CHECK_CHUNK = 256


@dataclass
class _EvalData:
    # The stored bytes; each kind decodes its own (images, audio, sensor). A large set (as large
    # as a streamed training job's, compute/streaming.py) is read from the blob store per sample.
    samples: Sequence[bytes]
    labels: list[str]
    info: EvalSetInfo


def _eval_data(
    blobs: BlobStore, spec: InputSpec, samples: Sequence[Sample]
) -> tuple[_EvalData, Skipped]:
    """The evaluation set's samples; damaged members are left out (and returned) rather than
    failing every later job of the project, as training does with its own samples. Samples of
    a label the task kind reserves (audio's background noise: never a class) are not scored."""
    reserved: frozenset[str] = getattr(task_kind(spec.task), "reserved_labels", frozenset())
    wanted = [s for s in samples if s.in_eval_set and s.label not in reserved]
    raw: Sequence[bytes]
    if streaming.plan(spec, len(wanted)).stream:
        # Check every member's bytes chunk by chunk, keep only the digests (memory flat in N).
        members, skipped = [], []
        for start in range(0, len(wanted), _CHECK_CHUNK):
            kept, _, lost = read_sample_bytes(blobs, wanted[start : start + _CHECK_CHUNK])
            members += kept
            skipped += lost
        raw = BlobSampleBytes(blobs, [s.sha256 for s in members], [s.id for s in members])
    else:
        members, raw, skipped = read_sample_bytes(blobs, wanted)
    counts: dict[str, int] = {}
    for s in members:
        counts[s.label] = counts.get(s.label, 0) + 1
    info = EvalSetInfo(
        num_samples=len(members),
        class_counts=counts,
        snapshot_sha256=eval_set_snapshot([(s.sha256, s.label) for s in members]),
    )
    return _EvalData(samples=raw, labels=[s.label for s in members], info=info), skipped


def _score(
    fmt: str,
    data: bytes,
    spec: InputSpec,
    model_labels: Sequence[str],
    report_labels: Sequence[str],
    evalset: _EvalData,
) -> FormatScore:
    """Run one .tflite file in LiteRT on the evaluation set; classes in ``report_labels``.

    Each sample is decoded by the project's task kind exactly as training decoded it."""
    from mobiletrain.compute.litert import predict_samples

    index = {name: i for i, name in enumerate(report_labels)}
    y_true = np.asarray([index[name] for name in evalset.labels], dtype=np.int64)
    if len(y_true) == 0:
        predicted = np.zeros(0, dtype=np.int64)
    else:
        probs = predict_samples(data, spec, evalset.samples)
        predicted = np.asarray(
            [index[model_labels[i]] for i in probs.argmax(axis=1)], dtype=np.int64
        )
    report = classification_report(y_true, predicted, len(report_labels), list(report_labels))
    return FormatScore(
        format=fmt,
        accuracy=float(report["accuracy"]),
        macro_f1=float(report["macro_f1"]),
        per_class=[ClassScore.from_dict(c) for c in report["per_class"]],
        confusion_matrix=report["confusion_matrix"],
    )


def _evaluate(
    files: dict[str, bytes],
    spec: InputSpec,
    model_labels: Sequence[str],
    report_labels: Sequence[str],
    evalset: _EvalData,
) -> Evaluation:
    return Evaluation(
        eval_set=evalset.info,
        formats={
            fmt: _score(fmt, data, spec, model_labels, report_labels, evalset)
            for fmt, data in files.items()
        },
    )


def _classifier_files(artifacts: dict[ModelFormat, bytes]) -> dict[str, bytes]:
    return {f.value: data for f, data in artifacts.items() if f in TFLITE_FORMATS}


def _current_files(
    store: MetadataStore, blobs: BlobStore, project: Project
) -> tuple[int | None, dict[str, bytes], list[str]]:
    version = project.promoted_version
    if version is None:
        return None, {}, []
    model = store.get_model_version(project.id, version)
    if model is None:
        return None, {}, []
    files = {
        f.value: blobs.get(a.sha256) for f, a in model.artifacts.items() if f in TFLITE_FORMATS
    }
    return version, files, manifest_of(model).labels


def publish_version(
    store: MetadataStore,
    blobs: BlobStore,
    job: Job,
    project: Project,
    samples: list[Sample],
    train_samples: list[Sample],
    label_names: list[str],
    output: TrainingOutput,
    warnings: list[str],
    emit: Callable[[EventKind, dict[str, Any]], None],
) -> ModelVersion:
    """Evaluate, decide, embed the card, store the version and (when the gate says so) make it
    current. Returns the stored version."""
    from mobiletrain.compute.keras.export import embed_manifest

    started = time.monotonic()
    spec = project.input_spec
    evalset, skipped = _eval_data(blobs, spec, samples)
    if skipped:
        # A warning LOG event: the worker's reporter also adds it to the version's warnings.
        emit(EventKind.LOG, skipped_event(project, skipped, "evaluation"))
    current_version, current_files, current_labels = _current_files(store, blobs, project)
    # What the trainer wrote (labels, input, output, formats, validation metrics, ...), read
    # once; the gate adds the rest. Its labels are the model's output order, which may differ
    # from the job's (a kind drops labels it reserves, such as audio's background noise).
    base = ModelManifest.from_dict(output.manifest)
    model_labels = base.labels or list(label_names)
    report_labels = list(model_labels)
    for name in [*evalset.labels, *current_labels]:
        if name not in report_labels:
            report_labels.append(name)
    new_eval = _evaluate(
        _classifier_files(output.artifacts), spec, model_labels, report_labels, evalset
    )
    current_eval: Evaluation | None = None
    if current_files:
        try:
            current_eval = _evaluate(current_files, spec, current_labels, report_labels, evalset)
        except Exception:  # an unreadable old file must not block the new version
            log.warning("current version %s could not be evaluated", current_version, exc_info=True)
            warnings.append(
                f"current version {current_version} could not be evaluated on the evaluation "
                "set; the gate compared against nothing"
            )
    policy = project.release_policy or ReleasePolicy()
    decision = decide(policy, new_eval, current_eval, current_version, project.release_pinned)
    if current_version is not None and current_eval is None and decision.promoted:
        decision.promoted = False
        decision.reason = (
            f"current version {current_version} could not be evaluated, so the gate cannot show "
            "the new one is not worse: promote it yourself"
        )
    if evalset.info.num_samples == 0 and decision.promoted and current_version is not None:
        decision.promoted = False
        decision.reason = (
            "the evaluation set is empty (a label needs 5 samples before some are held out), "
            "so the gate cannot compare: promote it yourself"
        )
    primary = new_eval.primary()
    train_counts = {lab: sum(1 for s in train_samples if s.label == lab) for lab in label_names}
    if primary is not None and evalset.info.num_samples:
        flag = chance_warning(primary.accuracy, evalset.info.class_counts)
    else:
        val_acc = output.metrics.get("accuracy")  # a detector's metrics have none
        flag = chance_warning(float(val_acc), train_counts) if val_acc is not None else None
    if flag:
        warnings.append(flag)
    eval_seconds = time.monotonic() - started

    files = {
        fmt.value: FileInfo.for_format(fmt, hashlib.sha256(data).hexdigest(), len(data))
        for fmt, data in output.artifacts.items()
    }
    snapshot = hashlib.sha256(
        json.dumps(sorted((s.sha256, s.label) for s in train_samples)).encode()
    ).hexdigest()
    metrics = {
        **output.metrics,
        "split": output.split,
        "eval_set": new_eval.to_dict(),
        "evaluation_seconds": round(eval_seconds, 3),
    }
    embedding = [f.value for f in output.artifacts if f.is_tflite]
    for _attempt in range(5):
        version = store.next_model_version(project.id)
        created_at = datetime.now(UTC)
        card = dataclasses.replace(
            base,
            version=version,
            project_id=project.id,
            project_name=project.name,
            job_id=job.id,
            created_at=created_at,
            labels=list(model_labels),
            # The kind's description of the input (a sensor model's channels and normalisation
            # statistics, an audio clip's rate and length); the spec for cards without one.
            input=base.input or spec.to_dict(),
            files={},
            evaluation=new_eval,
            release=decision,
            dataset=DataSnapshot(
                num_samples=len(train_samples),
                class_counts=train_counts,
                snapshot_sha256=snapshot,
                split={
                    "seed": output.split.get("seed"),
                    "validation_fraction": output.split.get("validation_fraction"),
                    "num_train": len(output.split.get("train_ids", [])),
                    "num_validation": len(output.split.get("validation_ids", [])),
                },
            ),
            warnings=list(warnings),
        )
        # Files without an embedded card first: the embedded copies list them.
        card.files = {k: v for k, v in files.items() if k not in embedding}
        final: dict[ModelFormat, bytes] = {}
        for fmt, data in output.artifacts.items():
            final[fmt] = (
                embed_manifest(data, card.embedded(fmt.value, embedding)) if fmt.is_tflite else data
            )
        artifacts: dict[ModelFormat, Artifact] = {}
        for fmt, data in final.items():
            sha = blobs.put(data)
            artifacts[fmt] = Artifact(format=fmt, sha256=sha, size=len(data))
            files[fmt.value] = FileInfo.for_format(fmt, sha, len(data))
        card.files = files
        blobs.sync()  # durable before the version row points at them
        try:
            model = store.create_model_version(
                ModelVersion(
                    project_id=project.id,
                    version=version,
                    job_id=job.id,
                    created_at=created_at,
                    metrics=metrics,
                    manifest=card.to_dict(),
                    artifacts=artifacts,
                    status="candidate",
                    decision=decision,
                    evaluation=new_eval,
                    warnings=list(warnings),
                )
            )
            break
        except MobiletrainError as exc:
            if exc.code is not ErrorCode.ALREADY_EXISTS:
                raise
            continue  # another job took the number: embed the next one
    else:
        raise MobiletrainError(ErrorCode.INTERNAL, "could not allocate a model version number")

    status = VersionStatus.CANDIDATE
    if decision.promoted:
        record = store.change_current_version(
            ReleaseRecord(
                project_id=project.id,
                version=model.version,
                previous_version=current_version,
                action=ReleaseAction.PROMOTED,
                reason=decision.reason,
                actor=GATE_ACTOR,
                created_at=datetime.now(UTC),
                job_id=job.id,
            ),
            pinned=False,
            expected_current=current_version,
            rollout=Rollout.start(policy, model.version, current_version, datetime.now(UTC)),
        )
        if record is None:
            # A person (or another job) changed the current version while this one was being
            # evaluated: their choice stands.
            decision = ReleaseDecision.from_dict(
                {
                    **decision.to_dict(),
                    "promoted": False,
                    "reason": "the current version changed while this version was evaluated; "
                    "it is kept as a candidate (promote it yourself)",
                }
            )
            store.set_model_decision(project.id, model.version, decision)
        else:
            status = VersionStatus.CURRENT
    emit(
        EventKind.RELEASE,
        {
            **decision.to_dict(),
            "version": model.version,
            "status": status.value,
            "warnings": list(warnings),
            "eval_set": evalset.info.to_dict(),
            "formats": {k: v.accuracy for k, v in new_eval.formats.items()},
            "current_formats": (
                {k: v.accuracy for k, v in current_eval.formats.items()} if current_eval else {}
            ),
        },
    )
    return model


def describe_eval_set(samples: Sequence[Sample]) -> dict[str, Any]:
    """Counts of the evaluation set by label (for logs and tests)."""
    counts: dict[str, int] = {}
    for s in samples:
        if s.in_eval_set:
            counts[s.label] = counts.get(s.label, 0) + 1
    return counts


__all__ = ["GATE_ACTOR", "describe_eval_set", "publish_version", "split_eval_set"]
