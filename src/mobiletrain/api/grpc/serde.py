"""Conversions between the domain dataclasses of :mod:`mobiletrain.core` and protobuf messages.

This is the only module of the gRPC adapter that knows both worlds. Every domain type has an
``x_to_proto`` / ``x_from_proto`` pair; the ``from_proto`` side of request messages applies the
wire conventions (``0`` / ``*_UNSPECIFIED`` = server default) and raises
:class:`~mobiletrain.core.errors.MobiletrainError` for values the domain cannot represent, so the
servicers stay thin.

Domain → proto conversions never fail on odd stored data: a missing or non-numeric value in a
free-form JSON dict (event data, metrics) becomes the proto default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    federated_pb2,
    models_pb2,
    projects_pb2,
    tokens_pb2,
    training_pb2,
)
from mobiletrain.api.grpc.serde_tasks import task_spec_from_proto, task_spec_to_proto
from mobiletrain.core.annotations import Box, rounded
from mobiletrain.core.auth import Role
from mobiletrain.core.errors import ErrorCode, MobiletrainError, error_by_number
from mobiletrain.core.manifest import manifest_of
from mobiletrain.core.metrics import VersionMetrics
from mobiletrain.core.release import (
    ReleaseDecision,
    ReleaseMode,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
    VersionStatus,
)
from mobiletrain.core.services import BoxStats, IncomingSample, Prediction
from mobiletrain.core.types import (
    Architecture,
    Artifact,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobPhase,
    JobState,
    ModelFormat,
    ModelVersion,
    Normalization,
    Project,
    Sample,
    SampleResult,
    SampleStatus,
    TaskType,
    Token,
    UploadSummary,
)
from mobiletrain.federated.config import FederatedConfig, StragglerPolicy, StrategyName
from mobiletrain.federated.device import UpdateReply
from mobiletrain.federated.records import FederatedSession, RoundRecord, SessionState
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.validation import RejectReason
from mobiletrain.proto_enums import domain_table

E = TypeVar("E", bound=Enum)

# --------------------------------------------------------------------------------------------
# Enums. Each table maps a domain enum member to its proto number by the proto naming rule
# (``TaskType.IMAGE_CLASSIFICATION`` <-> ``TASK_TYPE_IMAGE_CLASSIFICATION``, see
# mobiletrain/proto_enums.py), built and checked complete at import. Value 0 (UNSPECIFIED) is
# never in a table: requests resolve it to the default, responses never send it.
# --------------------------------------------------------------------------------------------

_TASK_TYPES = domain_table(TaskType, common_pb2.TaskType)
_COLOR_MODES = domain_table(ColorMode, common_pb2.ColorMode)
_NORMALIZATIONS = domain_table(Normalization, common_pb2.Normalization)
_MODEL_FORMATS = domain_table(ModelFormat, common_pb2.ModelFormat)
_ARCHITECTURES = domain_table(Architecture, training_pb2.Architecture)
_JOB_STATES = domain_table(JobState, training_pb2.JobState)
_EVENT_KINDS = domain_table(EventKind, training_pb2.EventKind)
_JOB_PHASES = domain_table(JobPhase, training_pb2.JobPhase)
_RELEASE_MODES = domain_table(ReleaseMode, models_pb2.ReleaseMode)
_VERSION_STATUSES = domain_table(VersionStatus, models_pb2.VersionStatus)
_SAMPLE_STATUSES = domain_table(SampleStatus, datasets_pb2.SampleStatus)

_FORMAT_NAMES = frozenset(f.value for f in ModelFormat)

# Payload field of JobEvent for each kind.
_EVENT_PAYLOADS: dict[EventKind, str] = {
    EventKind.STATE: "state_changed",
    EventKind.PROGRESS: "progress",
    EventKind.EPOCH: "epoch_end",
    EventKind.EVALUATION: "evaluation",
    EventKind.LOG: "log",
    EventKind.RELEASE: "release",
    EventKind.PHASE: "phase",
}


def _enum_from_proto(
    table: Mapping[E, int], number: int, what: str, code: ErrorCode, default: E | None
) -> E:
    """Resolve a proto enum number; 0 gives ``default`` (or fails when there is none)."""
    if number == 0 and default is not None:
        return default
    for member, value in table.items():
        if value == number:
            return member
    allowed = ", ".join(str(getattr(m, "value", m)) for m in table)
    if number == 0:
        raise MobiletrainError(code, f"{what} is required; allowed: {allowed}")
    raise MobiletrainError(code, f"unknown {what} {number}; allowed: {allowed}")


def task_type_to_proto(task: TaskType) -> common_pb2.TaskType:
    """Domain task type → ``TaskType`` number."""
    return _TASK_TYPES[task]


def task_type_from_proto(number: int) -> TaskType:
    """``TaskType`` number → domain; UNSPECIFIED = image classification."""
    return _enum_from_proto(
        _TASK_TYPES, number, "task type", ErrorCode.UNSUPPORTED_TASK, TaskType.IMAGE_CLASSIFICATION
    )


def color_mode_to_proto(mode: ColorMode) -> common_pb2.ColorMode:
    """Domain colour mode → ``ColorMode`` number."""
    return _COLOR_MODES[mode]


def color_mode_from_proto(number: int) -> ColorMode:
    """``ColorMode`` number → domain; UNSPECIFIED = RGB."""
    return _enum_from_proto(
        _COLOR_MODES, number, "color mode", ErrorCode.INVALID_INPUT_SPEC, ColorMode.RGB
    )


def normalization_to_proto(normalization: Normalization) -> common_pb2.Normalization:
    """Domain normalisation → ``Normalization`` number."""
    return _NORMALIZATIONS[normalization]


def normalization_from_proto(number: int) -> Normalization:
    """``Normalization`` number → domain; UNSPECIFIED = zero-one."""
    return _enum_from_proto(
        _NORMALIZATIONS,
        number,
        "normalization",
        ErrorCode.INVALID_INPUT_SPEC,
        Normalization.ZERO_ONE,
    )


def model_format_to_proto(fmt: ModelFormat) -> common_pb2.ModelFormat:
    """Domain model format → ``ModelFormat`` number."""
    return _MODEL_FORMATS[fmt]


def model_format_from_proto(number: int) -> ModelFormat:
    """``ModelFormat`` number → domain; UNSPECIFIED or unknown fails with INVALID_FORMAT."""
    return _enum_from_proto(_MODEL_FORMATS, number, "model format", ErrorCode.INVALID_FORMAT, None)


def architecture_to_proto(architecture: Architecture) -> training_pb2.Architecture:
    """Domain architecture → ``Architecture`` number."""
    return _ARCHITECTURES[architecture]


def architecture_from_proto(number: int) -> Architecture:
    """``Architecture`` number → domain; UNSPECIFIED = the default (small CNN)."""
    return _enum_from_proto(
        _ARCHITECTURES,
        number,
        "architecture",
        ErrorCode.INVALID_HYPERPARAMETERS,
        Hyperparameters().architecture,
    )


def job_state_to_proto(state: JobState) -> training_pb2.JobState:
    """Domain job state → ``JobState`` number."""
    return _JOB_STATES[state]


def job_state_from_proto(number: int) -> JobState:
    """``JobState`` number → domain (UNSPECIFIED is invalid)."""
    return _enum_from_proto(_JOB_STATES, number, "job state", ErrorCode.INVALID_ARGUMENT, None)


def event_kind_to_proto(kind: EventKind) -> training_pb2.EventKind:
    """Domain event kind → ``EventKind`` number."""
    return _EVENT_KINDS[kind]


def event_kind_from_proto(number: int) -> EventKind:
    """``EventKind`` number → domain (UNSPECIFIED is invalid)."""
    return _enum_from_proto(_EVENT_KINDS, number, "event kind", ErrorCode.INVALID_ARGUMENT, None)


def sample_status_to_proto(status: SampleStatus) -> datasets_pb2.SampleStatus:
    """Domain sample status → ``SampleStatus`` number."""
    return _SAMPLE_STATUSES[status]


def sample_status_from_proto(number: int) -> SampleStatus:
    """``SampleStatus`` number → domain (UNSPECIFIED is invalid)."""
    return _enum_from_proto(
        _SAMPLE_STATUSES, number, "sample status", ErrorCode.INVALID_ARGUMENT, None
    )


# --------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------


def timestamp_to_proto(value: datetime) -> Timestamp:
    """A datetime (naive = UTC) → ``google.protobuf.Timestamp``."""
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def timestamp_from_proto(ts: Timestamp) -> datetime:
    """``google.protobuf.Timestamp`` → timezone-aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def _float(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    try:
        return float(value)
    except OverflowError:  # an int past the largest double
        return 0.0


def _int(data: Mapping[str, Any], key: str) -> int:
    """An int32 payload field (every ``_int`` target is int32); out of range = 0."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    number = int(value)
    return number if -(2**31) <= number < 2**31 else 0


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _json(value: Any) -> str:
    """Compact JSON that keeps non-ASCII text readable (labels may be any language)."""
    return json.dumps(value, ensure_ascii=False, default=str)


# --------------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------------


def input_spec_to_proto(spec: InputSpec) -> common_pb2.InputSpec:
    """Domain input spec → ``InputSpec`` with every field (derived ones too) filled."""
    scale, offset = spec.normalization.scale_offset()
    msg = common_pb2.InputSpec(
        width=spec.width,
        height=spec.height,
        color_mode=color_mode_to_proto(spec.color_mode),
        normalization=normalization_to_proto(spec.normalization),
        channels=spec.channels,
        scale=scale,
        offset=offset,
    )
    task_spec_to_proto(spec.task_spec, msg)  # the task kind's part (audio, sensor)
    return msg


def input_spec_from_proto(msg: common_pb2.InputSpec) -> InputSpec:
    """``InputSpec`` → domain; 0 / UNSPECIFIED fields take the defaults, derived ones are ignored.

    Ranges are not checked here (the project service does that, with INVALID_INPUT_SPEC).
    """
    default = InputSpec()
    return InputSpec(
        width=msg.width or default.width,
        height=msg.height or default.height,
        color_mode=color_mode_from_proto(msg.color_mode),
        normalization=normalization_from_proto(msg.normalization),
        task_spec=task_spec_from_proto(msg),
    )


def project_to_proto(project: Project, current_version: int | None) -> projects_pb2.Project:
    """Domain project → ``Project``.

    ``current_version`` is the version apps get now (the promoted one, else the newest; None
    when the project has no model), which the wire calls ``promoted_version``.
    """
    return projects_pb2.Project(
        id=project.id,
        name=project.name,
        task=task_type_to_proto(project.task),
        labels=project.labels,
        labels_fixed=project.labels_fixed,
        input_spec=input_spec_to_proto(project.input_spec),
        created_at=timestamp_to_proto(project.created_at),
        promoted_version=current_version or 0,
    )


def project_from_proto(msg: projects_pb2.Project) -> Project:
    """``Project`` → domain (``promoted_version`` 0 becomes None)."""
    return Project(
        id=msg.id,
        name=msg.name,
        task=task_type_from_proto(msg.task),
        labels=list(msg.labels),
        labels_fixed=msg.labels_fixed,
        input_spec=input_spec_from_proto(msg.input_spec),
        created_at=timestamp_from_proto(msg.created_at),
        promoted_version=msg.promoted_version or None,
    )


@dataclass(frozen=True)
class ProjectDraft:
    """The arguments of ``ProjectService.create`` as a CreateProject request carries them."""

    name: str
    task: TaskType = TaskType.IMAGE_CLASSIFICATION
    labels: list[str] = field(default_factory=list)
    input_spec: InputSpec | None = None


def project_draft_to_proto(draft: ProjectDraft) -> projects_pb2.CreateProjectRequest:
    """Draft → ``CreateProjectRequest``."""
    msg = projects_pb2.CreateProjectRequest(
        name=draft.name, task=task_type_to_proto(draft.task), labels=draft.labels
    )
    if draft.input_spec is not None:
        msg.input_spec.CopyFrom(input_spec_to_proto(draft.input_spec))
    return msg


def project_draft_from_proto(msg: projects_pb2.CreateProjectRequest) -> ProjectDraft:
    """``CreateProjectRequest`` → draft (absent input spec = server default)."""
    return ProjectDraft(
        name=msg.name,
        task=task_type_from_proto(msg.task),
        labels=list(msg.labels),
        input_spec=input_spec_from_proto(msg.input_spec) if msg.HasField("input_spec") else None,
    )


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def sample_to_proto(sample: Sample) -> datasets_pb2.Sample:
    """Domain sample → ``Sample``."""
    return datasets_pb2.Sample(
        id=sample.id,
        project_id=sample.project_id,
        client_id=sample.client_id,
        label=sample.label,
        sha256=sample.sha256,
        size=sample.size,
        media_type=sample.media_type,
        width=sample.width,
        height=sample.height,
        created_at=timestamp_to_proto(sample.created_at),
        damaged=sample.damaged,
        boxes=boxes_to_proto(sample.boxes or ()),
        detection=sample.boxes is not None,
    )


def sample_from_proto(msg: datasets_pb2.Sample) -> Sample:
    """``Sample`` → domain."""
    return Sample(
        id=msg.id,
        project_id=msg.project_id,
        client_id=msg.client_id,
        label=msg.label,
        sha256=msg.sha256,
        size=msg.size,
        media_type=msg.media_type,
        width=msg.width,
        height=msg.height,
        created_at=timestamp_from_proto(msg.created_at),
        damaged=msg.damaged,
        boxes=boxes_from_proto(msg.boxes) if msg.detection else None,
    )


def boxes_to_proto(boxes: Iterable[Box]) -> list[common_pb2.BoundingBox]:
    """Domain boxes → ``BoundingBox`` messages."""
    return [
        common_pb2.BoundingBox(
            label=b.label, x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max
        )
        for b in boxes
    ]


def boxes_from_proto(msgs: Iterable[common_pb2.BoundingBox]) -> list[Box]:
    """``BoundingBox`` messages → domain boxes, coordinates rounded to 6 decimals (float32 on
    the wire: 0.1 arrives as 0.100000001...; the store keeps what REST's JSON would give)."""
    return [rounded(Box(m.label, m.x_min, m.y_min, m.x_max, m.y_max)) for m in msgs]


def incoming_sample_from_proto(msg: datasets_pb2.InlineSample) -> IncomingSample:
    """``InlineSample`` → a sample for ``DatasetService.upload`` (checksums are the caller's)."""
    return IncomingSample(
        client_id=msg.client_id,
        label=msg.label,
        data=msg.data,
        boxes=boxes_from_proto(msg.boxes) if msg.boxes else None,
    )


def sample_header_from_proto(
    msg: datasets_pb2.SampleHeader, data: bytes = b"", error: MobiletrainError | None = None
) -> IncomingSample:
    """``SampleHeader`` plus the reassembled bytes (or a rejection) → an upload sample."""
    return IncomingSample(
        client_id=msg.client_id,
        label=msg.label,
        data=data,
        error=error,
        boxes=boxes_from_proto(msg.boxes) if msg.boxes else None,
    )


def sample_result_to_proto(result: SampleResult) -> datasets_pb2.SampleResult:
    """Domain per-sample result → ``SampleResult`` (error code as its number)."""
    return datasets_pb2.SampleResult(
        client_id=result.client_id,
        status=sample_status_to_proto(result.status),
        sample_id=result.sample_id or "",
        error_code=result.error_code.number if result.error_code is not None else 0,
        reason=result.reason,
    )


def sample_result_from_proto(msg: datasets_pb2.SampleResult) -> SampleResult:
    """``SampleResult`` → domain (an error number unknown to this version becomes INTERNAL)."""
    code: ErrorCode | None = None
    if msg.error_code:
        code = error_by_number(msg.error_code) or ErrorCode.INTERNAL
    return SampleResult(
        client_id=msg.client_id,
        status=sample_status_from_proto(msg.status),
        sample_id=msg.sample_id or None,
        error_code=code,
        reason=msg.reason,
    )


def upload_summary_to_proto(summary: UploadSummary) -> datasets_pb2.UploadSamplesResponse:
    """Domain upload summary → ``UploadSamplesResponse`` with the three counters."""
    return datasets_pb2.UploadSamplesResponse(
        results=[sample_result_to_proto(r) for r in summary.results],
        accepted=summary.count(SampleStatus.ACCEPTED),
        duplicates=summary.count(SampleStatus.DUPLICATE),
        rejected=summary.count(SampleStatus.REJECTED),
    )


def upload_summary_from_proto(msg: datasets_pb2.UploadSamplesResponse) -> UploadSummary:
    """``UploadSamplesResponse`` → domain (the counters follow from the results)."""
    return UploadSummary(results=[sample_result_from_proto(r) for r in msg.results])


def class_counts_to_proto(counts: Mapping[str, int]) -> datasets_pb2.GetClassCountsResponse:
    """Label → count (in label order) → ``GetClassCountsResponse`` with the total."""
    return datasets_pb2.GetClassCountsResponse(
        counts=[datasets_pb2.ClassCount(label=k, count=v) for k, v in counts.items()],
        total=sum(counts.values()),
    )


def box_stats_to_proto(stats: BoxStats, msg: datasets_pb2.GetClassCountsResponse) -> None:
    """Fill a detection project's box counts into a ``GetClassCountsResponse``."""
    msg.box_counts.extend(
        datasets_pb2.ClassCount(label=k, count=v) for k, v in stats.boxes_per_label.items()
    )
    msg.images_without_boxes = stats.images_without_boxes


def box_stats_from_proto(msg: datasets_pb2.GetClassCountsResponse) -> BoxStats:
    """The box counts of a ``GetClassCountsResponse`` → domain."""
    return BoxStats(
        boxes_per_label={c.label: c.count for c in msg.box_counts},
        images_without_boxes=msg.images_without_boxes,
    )


def class_counts_from_proto(msg: datasets_pb2.GetClassCountsResponse) -> dict[str, int]:
    """``GetClassCountsResponse`` → label → count, in label order."""
    return {c.label: c.count for c in msg.counts}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

# Hyperparameters fields that are plain proto3 `optional` scalars with the same name.
_HP_SCALARS: tuple[str, ...] = tuple(
    f.name for f in fields(Hyperparameters) if f.name not in ("architecture", "formats")
)


def hyperparameters_to_proto(hp: Hyperparameters) -> training_pb2.Hyperparameters:
    """Domain hyperparameters → ``Hyperparameters`` with every field set to the value in use."""
    msg = training_pb2.Hyperparameters(
        architecture=architecture_to_proto(hp.architecture),
        formats=[model_format_to_proto(f) for f in hp.formats],
    )
    for name in _HP_SCALARS:
        setattr(msg, name, getattr(hp, name))
    return msg


def hyperparameters_from_proto(msg: training_pb2.Hyperparameters | None) -> Hyperparameters:
    """``Hyperparameters`` → domain; unset fields take the defaults (ranges unchecked here)."""
    hp = Hyperparameters()
    if msg is None:
        return hp
    for name in _HP_SCALARS:
        if msg.HasField(name):
            setattr(hp, name, getattr(msg, name))
    hp.architecture = architecture_from_proto(msg.architecture)
    if msg.formats:
        formats: list[ModelFormat] = []
        for number in msg.formats:
            fmt = model_format_from_proto(number)
            if fmt not in formats:
                formats.append(fmt)
        hp.formats = formats
    return hp


def job_to_proto(job: Job) -> training_pb2.Job:
    """Domain job → ``Job`` (unset timestamps stay unset, no model version = 0)."""
    msg = training_pb2.Job(
        id=job.id,
        project_id=job.project_id,
        state=job_state_to_proto(job.state),
        hyperparameters=hyperparameters_to_proto(job.hyperparameters),
        created_at=timestamp_to_proto(job.created_at),
        attempts=job.attempts,
        error=job.error,
        cancel_requested=job.cancel_requested,
        model_version=job.model_version or 0,
    )
    if job.started_at is not None:
        msg.started_at.CopyFrom(timestamp_to_proto(job.started_at))
    if job.finished_at is not None:
        msg.finished_at.CopyFrom(timestamp_to_proto(job.finished_at))
    return msg


def job_from_proto(msg: training_pb2.Job) -> Job:
    """``Job`` → domain."""
    return Job(
        id=msg.id,
        project_id=msg.project_id,
        state=job_state_from_proto(msg.state),
        hyperparameters=hyperparameters_from_proto(msg.hyperparameters),
        created_at=timestamp_from_proto(msg.created_at),
        started_at=timestamp_from_proto(msg.started_at) if msg.HasField("started_at") else None,
        finished_at=timestamp_from_proto(msg.finished_at) if msg.HasField("finished_at") else None,
        attempts=msg.attempts,
        error=msg.error,
        cancel_requested=msg.cancel_requested,
        model_version=msg.model_version or None,
    )


def _format_accuracies(accuracies: Mapping[str, float]) -> list[common_pb2.FormatAccuracy]:
    """``{format: accuracy}`` (known formats, as core reads them) → ``FormatAccuracy`` list."""
    return [
        common_pb2.FormatAccuracy(
            format=model_format_to_proto(ModelFormat(name)), accuracy=accuracy
        )
        for name, accuracy in accuracies.items()
        if name in _FORMAT_NAMES
    ]


def _evaluation_to_proto(data: Mapping[str, Any]) -> training_pb2.Evaluation:
    """The EVALUATION event's metrics (read by core's one metrics reader) → ``Evaluation``."""
    metrics = VersionMetrics.from_dict(data)
    return training_pb2.Evaluation(
        accuracy=metrics.accuracy or 0.0,
        labels=metrics.labels,
        per_class=[
            training_pb2.ClassMetrics(
                label=pc.label,
                precision=pc.precision,
                recall=pc.recall,
                f1=pc.f1,
                support=_int({"s": pc.support}, "s"),
            )
            for pc in metrics.per_class
        ],
        confusion_matrix=[
            training_pb2.ConfusionRow(counts=[_int({"c": c}, "c") for c in row])
            for row in metrics.confusion_matrix
        ],
        tflite_accuracy=_format_accuracies(metrics.summary().tflite_accuracy),
        metrics_json=_json(dict(data)),
    )


def job_event_to_proto(event: JobEvent) -> training_pb2.JobEvent:
    """Domain job event → ``JobEvent`` with the payload that matches its kind."""
    msg = training_pb2.JobEvent(
        job_id=event.job_id,
        seq=event.seq,
        kind=event_kind_to_proto(event.kind),
        created_at=timestamp_to_proto(event.created_at),
    )
    data = event.data
    if event.kind is EventKind.STATE:
        msg.state_changed.CopyFrom(
            training_pb2.StateChanged(
                state=job_state_to_proto(JobState(data["state"])),
                error=_str(data, "error"),
                error_code=_int(data, "error_code"),
            )
        )
    elif event.kind is EventKind.PROGRESS:
        msg.progress.CopyFrom(
            training_pb2.Progress(
                epoch=_int(data, "epoch"),
                epochs=_int(data, "epochs"),
                batch=_int(data, "batch"),
                batches=_int(data, "batches"),
                samples_per_second=_float(data, "samples_per_second"),
                eta_seconds=_float(data, "eta_seconds"),
                job_eta_seconds=_float(data, "job_eta_seconds"),
                phase=_phase_to_proto(data),
            )
        )
    elif event.kind is EventKind.EPOCH:
        msg.epoch_end.CopyFrom(
            training_pb2.EpochEnd(
                epoch=_int(data, "epoch"),
                epochs=_int(data, "epochs"),
                loss=_float(data, "loss"),
                accuracy=_float(data, "accuracy"),
                val_loss=_float(data, "val_loss"),
                val_accuracy=_float(data, "val_accuracy"),
                seconds=_float(data, "seconds"),
            )
        )
    elif event.kind is EventKind.EVALUATION:
        msg.evaluation.CopyFrom(_evaluation_to_proto(data))
    elif event.kind is EventKind.RELEASE:
        msg.release.CopyFrom(_release_outcome_to_proto(data))
    elif event.kind is EventKind.PHASE:
        msg.phase.CopyFrom(
            training_pb2.PhaseChanged(
                phase=_phase_to_proto(data), eta_seconds=_float(data, "eta_seconds")
            )
        )
    else:
        msg.log.CopyFrom(training_pb2.Log(message=_str(data, "message"), level=_str(data, "level")))
    return msg


def _phase_to_proto(data: Mapping[str, Any]) -> training_pb2.JobPhase:
    try:
        return _JOB_PHASES[JobPhase(_str(data, "phase"))]
    except ValueError:
        return training_pb2.JOB_PHASE_UNSPECIFIED


def job_phase_from_proto(number: int) -> str:
    """``JobPhase`` number → its wire string ("" for UNSPECIFIED or unknown)."""
    for phase, value in _JOB_PHASES.items():
        if value == number:
            return phase.value
    return ""


def _event_accuracies(value: Any) -> list[common_pb2.FormatAccuracy]:
    """A RELEASE event's ``{format: accuracy}`` → ``FormatAccuracy`` list (odd values skipped)."""
    return _format_accuracies(VersionMetrics.from_dict({"tflite": value}).tflite)


def _release_outcome_to_proto(data: Mapping[str, Any]) -> training_pb2.ReleaseOutcome:
    try:
        status = _VERSION_STATUSES[VersionStatus(_str(data, "status"))]
    except ValueError:
        status = models_pb2.VERSION_STATUS_UNSPECIFIED
    msg = training_pb2.ReleaseOutcome(
        version=_int(data, "version"),
        status=status,
        warnings=[str(w) for w in data.get("warnings") or []],
        eval_accuracy=_event_accuracies(data.get("formats")),
        current_eval_accuracy=_event_accuracies(data.get("current_formats")),
        eval_set_size=_int(data.get("eval_set") or {}, "num_samples"),
    )
    if "promoted" in data:
        msg.decision.CopyFrom(release_decision_to_proto(ReleaseDecision.from_dict(data)))
    return msg


def job_event_from_proto(msg: training_pb2.JobEvent) -> JobEvent:
    """``JobEvent`` → domain; ``data`` holds the payload's fields (evaluation: ``metrics_json``)."""
    kind = event_kind_from_proto(msg.kind)
    data: dict[str, Any]
    if kind is EventKind.STATE:
        data = {"state": job_state_from_proto(msg.state_changed.state).value}
        if msg.state_changed.error:
            data["error"] = msg.state_changed.error
        if msg.state_changed.error_code:
            data["error_code"] = msg.state_changed.error_code
    elif kind is EventKind.EVALUATION:
        data = json.loads(msg.evaluation.metrics_json or "{}")
    elif kind is EventKind.LOG:
        data = {"message": msg.log.message}
        if msg.log.level:
            data["level"] = msg.log.level
    elif kind is EventKind.PROGRESS:
        p = msg.progress
        data = {
            "epoch": p.epoch,
            "epochs": p.epochs,
            "batch": p.batch,
            "batches": p.batches,
            "samples_per_second": p.samples_per_second,
            "eta_seconds": p.eta_seconds,
        }
        if p.job_eta_seconds:
            data["job_eta_seconds"] = p.job_eta_seconds
        if p.phase:
            data["phase"] = job_phase_from_proto(p.phase)
    elif kind is EventKind.PHASE:
        data = {
            "phase": job_phase_from_proto(msg.phase.phase),
            "eta_seconds": msg.phase.eta_seconds or None,
        }
    elif kind is EventKind.RELEASE:
        release = msg.release
        data = {
            **release_decision_from_proto(release.decision).to_dict(),
            "version": release.version,
            "status": version_status_from_proto(release.status).value,
            "warnings": list(release.warnings),
        }
    else:
        payload = getattr(msg, _EVENT_PAYLOADS[kind])
        data = {f.name: getattr(payload, f.name) for f in payload.DESCRIPTOR.fields}
    return JobEvent(
        job_id=msg.job_id,
        seq=msg.seq,
        kind=kind,
        data=data,
        created_at=timestamp_from_proto(msg.created_at),
    )


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def artifact_to_proto(artifact: Artifact) -> common_pb2.Artifact:
    """Domain artifact → ``Artifact``."""
    return common_pb2.Artifact(
        format=model_format_to_proto(artifact.format), size=artifact.size, sha256=artifact.sha256
    )


def artifact_from_proto(msg: common_pb2.Artifact) -> Artifact:
    """``Artifact`` → domain."""
    return Artifact(format=model_format_from_proto(msg.format), sha256=msg.sha256, size=msg.size)


def metrics_summary_to_proto(metrics: Mapping[str, Any]) -> models_pb2.MetricsSummary:
    """A version's metrics JSON → ``MetricsSummary`` (accuracy and per-format accuracy, read
    by core's one metrics reader, as REST reads them; unset accuracy = 0)."""
    summary = VersionMetrics.from_dict(metrics).summary()
    return models_pb2.MetricsSummary(
        accuracy=summary.accuracy or 0.0,
        tflite_accuracy=_format_accuracies(summary.tflite_accuracy),
    )


def metrics_summary_from_proto(msg: models_pb2.MetricsSummary) -> dict[str, Any]:
    """``MetricsSummary`` → ``{"accuracy", "tflite_accuracy": {format: accuracy}}``."""
    return {
        "accuracy": msg.accuracy,
        "tflite_accuracy": {
            model_format_from_proto(fa.format).value: fa.accuracy for fa in msg.tflite_accuracy
        },
    }


def _artifacts_to_proto(model: ModelVersion) -> list[common_pb2.Artifact]:
    order = list(ModelFormat)
    return [artifact_to_proto(model.artifacts[f]) for f in sorted(model.artifacts, key=order.index)]


def model_version_to_proto(model: ModelVersion, current: bool) -> models_pb2.ModelVersion:
    """Domain model version → ``ModelVersion``; ``current`` says whether apps get it now."""
    if current:
        status = VersionStatus.CURRENT
    else:
        status = VersionStatus.CANDIDATE if model.status == "candidate" else VersionStatus.RETIRED
    msg = models_pb2.ModelVersion(
        project_id=model.project_id,
        version=model.version,
        job_id=model.job_id,
        created_at=timestamp_to_proto(model.created_at),
        current=current,
        metrics=metrics_summary_to_proto(model.metrics),
        artifacts=_artifacts_to_proto(model),
        status=_VERSION_STATUSES[status],
        warnings=list(model.warnings),
    )
    if model.decision is not None:
        msg.decision.CopyFrom(release_decision_to_proto(model.decision))
    if model.evaluation is not None:
        msg.eval_accuracy.extend(
            _format_accuracies({k: v.accuracy for k, v in model.evaluation.formats.items()})
        )
        msg.eval_set_size = model.evaluation.eval_set.num_samples
    return msg


def version_status_from_proto(number: int) -> VersionStatus:
    """``VersionStatus`` number → domain (UNSPECIFIED reads as candidate)."""
    for status, value in _VERSION_STATUSES.items():
        if value == number:
            return status
    return VersionStatus.CANDIDATE


def release_policy_to_proto(policy: ReleasePolicy) -> models_pb2.ReleasePolicy:
    """Domain release policy → ``ReleasePolicy`` (unset floors stay unset)."""
    msg = models_pb2.ReleasePolicy(
        mode=_RELEASE_MODES[policy.mode],
        margin=policy.margin,
        rollout_percent=policy.rollout_percent,
    )
    for name in ("min_accuracy", "min_per_class_recall", "max_int8_drop", "rollout_hours"):
        value = getattr(policy, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def release_policy_from_proto(msg: models_pb2.ReleasePolicy | None) -> ReleasePolicy:
    """``ReleasePolicy`` → domain, validated (INVALID_RELEASE_POLICY); unset = defaults."""
    if msg is None:
        return ReleasePolicy()
    mode = _enum_from_proto(
        _RELEASE_MODES,
        msg.mode,
        "release mode",
        ErrorCode.INVALID_RELEASE_POLICY,
        ReleaseMode.AUTO,
    )
    data: dict[str, Any] = {"mode": mode.value}
    for name in (
        "margin",
        "min_accuracy",
        "min_per_class_recall",
        "max_int8_drop",
        "rollout_percent",
        "rollout_hours",
    ):
        if msg.HasField(name):
            data[name] = getattr(msg, name)
    return ReleasePolicy.from_dict(data)


def release_policy_state_to_proto(
    policy: ReleasePolicy, pinned: bool, rollout: Rollout | None
) -> models_pb2.ReleasePolicyState:
    """A project's policy, pin and staged rollout → ``ReleasePolicyState``."""
    msg = models_pb2.ReleasePolicyState(policy=release_policy_to_proto(policy), pinned=pinned)
    if rollout is not None:
        msg.rollout.CopyFrom(
            models_pb2.Rollout(
                version=rollout.version,
                previous_version=rollout.previous_version,
                percent=rollout.percent,
                started_at=timestamp_to_proto(rollout.started_at),
            )
        )
        if rollout.complete_at is not None:
            msg.rollout.complete_at.CopyFrom(timestamp_to_proto(rollout.complete_at))
    return msg


def release_decision_to_proto(decision: ReleaseDecision) -> models_pb2.ReleaseDecision:
    """Domain release decision → ``ReleaseDecision``."""
    msg = models_pb2.ReleaseDecision(
        promoted=decision.promoted,
        reason=decision.reason,
        policy=release_policy_to_proto(decision.policy),
        current_version=decision.current_version or 0,
        checks=list(decision.checks),
    )
    if decision.accuracy is not None:
        msg.accuracy = decision.accuracy
    if decision.compared_format in {f.value for f in ModelFormat}:  # "" = nothing compared
        msg.compared_format = model_format_to_proto(ModelFormat(decision.compared_format))
    if decision.current_accuracy is not None:
        msg.current_accuracy = decision.current_accuracy
    return msg


def release_decision_from_proto(msg: models_pb2.ReleaseDecision) -> ReleaseDecision:
    """``ReleaseDecision`` → domain."""
    fmt = ""
    if msg.compared_format:
        fmt = model_format_from_proto(msg.compared_format).value
    return ReleaseDecision(
        promoted=msg.promoted,
        reason=msg.reason,
        policy=release_policy_from_proto(msg.policy),
        compared_format=fmt,
        accuracy=msg.accuracy if msg.HasField("accuracy") else None,
        current_version=msg.current_version or None,
        current_accuracy=msg.current_accuracy if msg.HasField("current_accuracy") else None,
        checks=list(msg.checks),
    )


def release_record_to_proto(record: ReleaseRecord) -> models_pb2.ReleaseRecord:
    """Domain release record → ``ReleaseRecord``."""
    return models_pb2.ReleaseRecord(
        version=record.version or 0,
        previous_version=record.previous_version or 0,
        action=record.action.value,
        reason=record.reason,
        actor=record.actor,
        job_id=record.job_id,
        created_at=timestamp_to_proto(record.created_at),
    )


def model_version_from_proto(msg: models_pb2.ModelVersion) -> ModelVersion:
    """``ModelVersion`` → domain (the wire carries only a metrics summary and no manifest)."""
    artifacts = [artifact_from_proto(a) for a in msg.artifacts]
    return ModelVersion(
        project_id=msg.project_id,
        version=msg.version,
        job_id=msg.job_id,
        created_at=timestamp_from_proto(msg.created_at),
        metrics=metrics_summary_from_proto(msg.metrics),
        manifest={},
        artifacts={a.format: a for a in artifacts},
    )


def manifest_json(model: ModelVersion) -> str:
    """The version's ``manifest.json`` text, as GetManifest and DownloadModel send it."""
    return _json(model.manifest)


def manifest_to_proto(model: ModelVersion, project: Project) -> models_pb2.Manifest:
    """A version's manifest → ``Manifest``; labels and input spec come from the manifest,
    falling back to the project's for manifests that lack them."""
    manifest = manifest_of(model)
    spec = project.input_spec
    if manifest.input:
        try:
            spec = InputSpec.from_dict(manifest.input)
        except (KeyError, ValueError, TypeError):
            spec = project.input_spec
    return models_pb2.Manifest(
        project_id=model.project_id,
        version=model.version,
        labels=manifest.labels_or(project.labels),
        input_spec=input_spec_to_proto(spec),
        artifacts=_artifacts_to_proto(model),
        manifest_json=manifest_json(model),
    )


def model_file_info_to_proto(
    model: ModelVersion, artifact: Artifact, file_name: str
) -> models_pb2.ModelFileInfo:
    """The file a DownloadModel stream carries → ``ModelFileInfo``."""
    return models_pb2.ModelFileInfo(
        version=model.version,
        format=model_format_to_proto(artifact.format),
        size=artifact.size,
        sha256=artifact.sha256,
        file_name=file_name,
        manifest_json=manifest_json(model),
    )


def update_check_to_proto(
    not_modified: bool, model: ModelVersion, artifact: Artifact
) -> models_pb2.CheckForUpdateResponse:
    """Result of ``ModelService.check_update`` → ``CheckForUpdateResponse``."""
    return models_pb2.CheckForUpdateResponse(
        not_modified=not_modified,
        latest=model_version_to_proto(model, current=True),
        artifact=artifact_to_proto(artifact),
    )


def prediction_to_proto(prediction: Prediction) -> models_pb2.Prediction:
    """Domain prediction → ``Prediction``."""
    return models_pb2.Prediction(
        label=prediction.label, index=prediction.index, score=prediction.score
    )


def prediction_from_proto(msg: models_pb2.Prediction) -> Prediction:
    """``Prediction`` → domain."""
    return Prediction(label=msg.label, index=msg.index, score=msg.score)


def predict_response_to_proto(
    model: ModelVersion, predictions: Sequence[Prediction], latency_ms: float
) -> models_pb2.PredictResponse:
    """Result of ``ModelService.predict`` → ``PredictResponse``."""
    return models_pb2.PredictResponse(
        predictions=[prediction_to_proto(p) for p in predictions],
        version=model.version,
        latency_ms=latency_ms,
    )


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------
_TOKEN_KINDS = domain_table(Role, tokens_pb2.TokenKind)


def token_kind_from_proto(number: int) -> Role:
    """``TokenKind`` number → role (UNSPECIFIED is an error)."""
    return _enum_from_proto(_TOKEN_KINDS, number, "token kind", ErrorCode.INVALID_ARGUMENT, None)


def token_to_proto(token: Token) -> tokens_pb2.Token:
    """Token record → ``Token`` (never the secret or its hash)."""
    msg = tokens_pb2.Token(
        id=token.id,
        kind=_TOKEN_KINDS[token.role],  # type: ignore[arg-type]
        project_id=token.project_id or "",
        name=token.name,
        created_at=timestamp_to_proto(token.created_at),
    )
    if token.expires_at is not None:
        msg.expires_at.CopyFrom(timestamp_to_proto(token.expires_at))
    if token.revoked_at is not None:
        msg.revoked_at.CopyFrom(timestamp_to_proto(token.revoked_at))
    return msg


# --------------------------------------------------------------------------------------------
# Federated learning (proto/mobiletrain/v1/federated.proto)
# --------------------------------------------------------------------------------------------

_SESSION_STATES = domain_table(SessionState, federated_pb2.SessionState)
_STRATEGIES = domain_table(StrategyName, federated_pb2.FederatedStrategy)
_STRAGGLER_POLICIES = domain_table(StragglerPolicy, federated_pb2.StragglerPolicy)
_ROUND_PHASES = domain_table(RoundPhase, federated_pb2.RoundPhase)
_REJECT_REASONS = domain_table(RejectReason, federated_pb2.RejectReason)
_WEIGHTS_DTYPES: dict[int, str] = {
    federated_pb2.WEIGHTS_DTYPE_UNSPECIFIED: "float32",
    federated_pb2.WEIGHTS_DTYPE_FLOAT32: "float32",
    federated_pb2.WEIGHTS_DTYPE_FLOAT16: "float16",
}
_OPTIONAL_CONFIG_FIELDS = (
    "rounds",
    "min_devices",
    "min_available_devices",
    "fraction",
    "round_deadline_seconds",
    "min_completion_rate",
    "accept_failures",
    "availability_seconds",
    "max_samples_per_device",
    "max_weight_share",
    "proximal_mu",
    "trim_fraction",
    "clip_norm",
    "noise_multiplier",
    "local_epochs",
    "learning_rate",
    "batch_size",
    "base_version",
    "seed",
)


def session_state_to_proto(state: SessionState) -> federated_pb2.SessionState:
    """Domain session state → ``SessionState`` number."""
    return _SESSION_STATES[state]


def round_phase_to_proto(phase: RoundPhase) -> federated_pb2.RoundPhase:
    """Domain round phase → ``RoundPhase`` number."""
    return _ROUND_PHASES[phase]


def reject_reason_to_proto(reason: str) -> federated_pb2.RejectReason:
    """A reject reason string ("" = accepted) → ``RejectReason`` number."""
    if not reason:
        return federated_pb2.REJECT_REASON_UNSPECIFIED
    return _REJECT_REASONS[RejectReason(reason)]


def weights_dtype_from_proto(number: int) -> str:
    """``WeightsDtype`` number → dtype name (unknown numbers name themselves)."""
    return _WEIGHTS_DTYPES.get(number, f"dtype-{number}")


def federated_config_from_proto(msg: federated_pb2.FederatedConfig | None) -> FederatedConfig:
    """``FederatedConfig`` → domain; unset fields take the defaults (not yet validated)."""
    config = FederatedConfig()
    if msg is None:
        return config
    for name in _OPTIONAL_CONFIG_FIELDS:
        if msg.HasField(name):
            setattr(config, name, getattr(msg, name))
    if msg.strategy:
        config.strategy = _enum_from_proto(
            _STRATEGIES, msg.strategy, "strategy", ErrorCode.INVALID_ARGUMENT, None
        )
    if msg.straggler_policy:
        config.straggler_policy = _enum_from_proto(
            _STRAGGLER_POLICIES,
            msg.straggler_policy,
            "straggler policy",
            ErrorCode.INVALID_ARGUMENT,
            None,
        )
    if msg.HasField("head"):
        config.hidden = list(msg.head.hidden)
    return config


def federated_config_to_proto(config: FederatedConfig) -> federated_pb2.FederatedConfig:
    """Domain config → ``FederatedConfig`` with every field set."""
    msg = federated_pb2.FederatedConfig(
        strategy=_STRATEGIES[config.strategy],
        straggler_policy=_STRAGGLER_POLICIES[config.straggler_policy],
        head=federated_pb2.HeadLayers(hidden=list(config.hidden)),
    )
    for name in _OPTIONAL_CONFIG_FIELDS:
        setattr(msg, name, getattr(config, name))
    return msg


def _files_to_proto(files: Mapping[str, Mapping[str, Any]]) -> list[common_pb2.Artifact]:
    order = list(ModelFormat)
    out = []
    for name in sorted(files, key=lambda n: order.index(ModelFormat(n))):
        info = files[name]
        out.append(
            common_pb2.Artifact(
                format=model_format_to_proto(ModelFormat(name)),
                size=int(info["size"]),
                sha256=str(info["sha256"]),
            )
        )
    return out


def federated_session_to_proto(
    session: FederatedSession, weights_size: int | None = None
) -> federated_pb2.FederatedSession:
    """Domain session → ``FederatedSession`` (``files`` include the current weights)."""
    files = dict(session.files)
    if session.weights_sha256 and weights_size is not None:
        files[ModelFormat.HEAD_WEIGHTS.value] = {
            "sha256": session.weights_sha256,
            "size": weights_size,
        }
    msg = federated_pb2.FederatedSession(
        id=session.id,
        project_id=session.project_id,
        job_id=session.job_id,
        state=session_state_to_proto(session.state),
        config=federated_config_to_proto(session.config),
        labels=list(session.labels),
        current_round=session.current_round,
        model_version=session.model_version or 0,
        files=_files_to_proto(files),
        created_at=timestamp_to_proto(session.created_at),
        error=session.error,
        ondevice_json=json.dumps(session.bundle.get("ondevice", {}), sort_keys=True),
    )
    accuracy = session.metrics.get("accuracy")
    if isinstance(accuracy, int | float):
        msg.held_out_accuracy = float(accuracy)
    if session.finished_at is not None:
        msg.finished_at.CopyFrom(timestamp_to_proto(session.finished_at))
    return msg


def federated_round_to_proto(record: RoundRecord) -> federated_pb2.FederatedRound:
    """Domain round → ``FederatedRound``."""
    result = record.result
    accepted = result.get("accepted")
    msg = federated_pb2.FederatedRound(
        number=record.number,
        phase=round_phase_to_proto(record.phase),
        selected=len(record.selected),
        accepted=len(accepted) if isinstance(accepted, Mapping) else 0,
        completion_rate=_float(result, "completion_rate"),
        noise_std=_float(result, "noise_std"),
        model_version=_int(result, "model_version"),
        close_reason=_str(result, "close_reason"),
        opened_at=timestamp_to_proto(record.opened_at),
        deadline=timestamp_to_proto(record.deadline_at),
        result_json=json.dumps(result, sort_keys=True, default=str),
    )
    evaluation = result.get("evaluation")
    if isinstance(evaluation, Mapping) and isinstance(evaluation.get("accuracy"), int | float):
        msg.held_out_accuracy = float(evaluation["accuracy"])
    if record.closed_at is not None:
        msg.closed_at.CopyFrom(timestamp_to_proto(record.closed_at))
    return msg


def update_reply_to_proto(reply: UpdateReply) -> federated_pb2.PushUpdateResponse:
    """Domain update reply → ``PushUpdateResponse``."""
    return federated_pb2.PushUpdateResponse(
        accepted=reply.accepted,
        round=reply.round,
        reason=reject_reason_to_proto(reply.reason),
        message=reply.message,
    )
