"""gRPC conversion of the task-kind part of a project: task types and ``InputSpec.task_spec``.

Kept apart from ``serde.py`` so a new task kind touches this module only; ``serde.py`` calls
:func:`task_spec_to_proto` / :func:`task_spec_from_proto` from its InputSpec conversions.
Enum tables follow the proto naming rule (``TASK_TYPE_`` + member name), so they are
derived, never written by hand.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from mobiletrain._proto.mobiletrain.v1 import common_pb2
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    AudioSpec,
    DetectionSpec,
    LongClips,
    SensorFraming,
    SensorSpec,
    TaskSpec,
    TaskType,
)
from mobiletrain.proto_enums import domain_table

E = TypeVar("E", bound=enum.Enum)


TASK_TYPES: Mapping[TaskType, int] = domain_table(TaskType, common_pb2.TaskType)
LONG_CLIPS: Mapping[LongClips, int] = domain_table(LongClips, common_pb2.LongClips)
SENSOR_FRAMINGS: Mapping[SensorFraming, int] = domain_table(SensorFraming, common_pb2.SensorFraming)


def _from_number(table: Mapping[E, int], number: int, what: str, default: E) -> E:
    if number == 0:
        return default
    for member, value in table.items():
        if value == number:
            return member
    allowed = ", ".join(str(m.value) for m in table)
    raise MobiletrainError(
        ErrorCode.INVALID_INPUT_SPEC, f"unknown {what} {number}; allowed: {allowed}"
    )


def task_spec_to_proto(spec: TaskSpec | None, msg: common_pb2.InputSpec) -> None:
    """Fill ``msg``'s ``task_spec`` oneof from the domain (nothing for image projects)."""
    if isinstance(spec, AudioSpec):
        msg.audio.CopyFrom(
            common_pb2.AudioSpec(
                sample_rate_hz=spec.sample_rate_hz,
                clip_ms=spec.clip_ms,
                long_clips=LONG_CLIPS[spec.long_clips],  # type: ignore[arg-type]
                clip_samples=spec.clip_samples,
            )
        )
    elif isinstance(spec, SensorSpec):
        msg.sensor.CopyFrom(
            common_pb2.SensorSpec(
                channels=list(spec.channels),
                rate_hz=spec.rate_hz,
                window=spec.window,
                stride=spec.stride,
                framing=SENSOR_FRAMINGS[spec.framing],  # type: ignore[arg-type]
            )
        )
    elif isinstance(spec, DetectionSpec):
        msg.detection.CopyFrom(
            common_pb2.DetectionSpec(
                max_detections=spec.max_detections,
                score_threshold=spec.score_threshold,
                iou_threshold=spec.iou_threshold,
            )
        )


def task_spec_from_proto(msg: common_pb2.InputSpec) -> TaskSpec | None:
    """``InputSpec``'s oneof → domain; 0 / empty fields take the defaults, derived ones are
    ignored. Ranges are checked by the project service (INVALID_INPUT_SPEC)."""
    which = msg.WhichOneof("task_spec")
    if which == "audio":
        audio, default_audio = msg.audio, AudioSpec()
        return AudioSpec(
            sample_rate_hz=audio.sample_rate_hz or default_audio.sample_rate_hz,
            clip_ms=audio.clip_ms or default_audio.clip_ms,
            long_clips=_from_number(LONG_CLIPS, audio.long_clips, "long_clips", LongClips.REJECT),
        )
    if which == "sensor":
        sensor, default = msg.sensor, SensorSpec()
        return SensorSpec(
            channels=tuple(sensor.channels) or default.channels,
            rate_hz=sensor.rate_hz or default.rate_hz,
            window=sensor.window or default.window,
            stride=sensor.stride or default.stride,
            framing=_from_number(
                SENSOR_FRAMINGS, sensor.framing, "sensor framing", SensorFraming.WINDOWS
            ),
        )
    if which == "detection":
        det, default_det = msg.detection, DetectionSpec()
        # float32 on the wire: 0.25 is exact, 0.3 arrives as 0.30000001; 6 decimals suffice.
        return DetectionSpec(
            max_detections=det.max_detections or default_det.max_detections,
            score_threshold=round(det.score_threshold, 6) or default_det.score_threshold,
            iou_threshold=round(det.iou_threshold, 6) or default_det.iou_threshold,
        )
    return None
