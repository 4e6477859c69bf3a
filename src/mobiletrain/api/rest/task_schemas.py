"""REST shapes of the task-kind part of a project's input contract (``input_spec.audio`` /
``input_spec.sensor``), kept apart from ``schemas.py`` so a new task kind touches this
module only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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

TASK_DESCRIPTION = (
    "What the project learns: `image-classification` (JPEG/PNG/WebP), `audio-classification` "
    "(WAV; settings in `input_spec.audio`), `sensor-classification` (CSV/JSON recordings; "
    "settings in `input_spec.sensor`) or `object-detection` (JPEG/PNG/WebP with boxes; "
    "settings in `input_spec.detection`)."
)
TASK_VALUES = [t.value for t in TaskType]


class AudioSpecModel(BaseModel):
    """Audio input contract: the app feeds `clip_samples` float32 PCM values in -1..1, mono,
    at `sample_rate_hz`, shape [1, clip_samples]; shorter recordings zero-padded at the end."""

    model_config = ConfigDict(strict=True, extra="forbid")

    sample_rate_hz: int = Field(default=16_000, description="Sample rate, 4000..48000 Hz.")
    clip_ms: int = Field(default=1000, description="Clip length in milliseconds, 100..10000.")
    long_clips: str = Field(
        default=LongClips.REJECT.value,
        description="Longer uploads: `reject` (AUDIO_TOO_LONG) or `split` into clips.",
        json_schema_extra={"enum": [m.value for m in LongClips]},
    )
    clip_samples: int | None = Field(
        default=None, description="Output only: sample_rate_hz * clip_ms / 1000 (ignored on input)."
    )


class SensorSpecModel(BaseModel):
    """Sensor input contract: the app feeds `window` readings of `channels` (in this order) at
    `rate_hz`, float32 raw units, shape [1, window, channels]; padding repeats the last
    reading. Normalisation runs inside the model."""

    model_config = ConfigDict(strict=True, extra="forbid")

    channels: list[str] = Field(
        default_factory=lambda: ["x", "y", "z"],
        description="Channel names in model order; every upload must contain each one.",
    )
    rate_hz: float = Field(default=50.0, description="Sampling rate, 0.1..10000 Hz.")
    window: int = Field(default=100, description="Readings per window, 4..10000.")
    stride: int = Field(default=50, description="Readings between window starts, 1..window.")
    framing: str = Field(
        default=SensorFraming.WINDOWS.value,
        description="`windows` (cut with a stride) or `pad` (one window per recording).",
        json_schema_extra={"enum": [m.value for m in SensorFraming]},
    )


class DetectionSpecModel(BaseModel):
    """Object-detection settings: the exported model returns at most `max_detections` boxes
    scoring at least `score_threshold`, after non-maximum suppression at `iou_threshold`
    (inside the model). The image fields of the input spec apply as for images."""

    model_config = ConfigDict(strict=True, extra="forbid")

    max_detections: int = Field(default=10, description="Boxes the model returns, 1..100.")
    score_threshold: float = Field(default=0.25, description="Lowest score returned, 0..1.")
    iou_threshold: float = Field(default=0.5, description="NMS overlap threshold, 0..1.")


def _enum(enum_type: type[LongClips] | type[SensorFraming], value: str, what: str) -> str:
    try:
        enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC, f"unknown {what} {value!r}; allowed: {allowed}"
        ) from None
    return value


def task_spec_from_models(
    audio: AudioSpecModel | None,
    sensor: SensorSpecModel | None,
    detection: DetectionSpecModel | None = None,
) -> TaskSpec | None:
    """Request shapes → domain (at most one may be given; INVALID_INPUT_SPEC otherwise)."""
    if sum(m is not None for m in (audio, sensor, detection)) > 1:
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            "give at most one of input_spec.audio, input_spec.sensor, input_spec.detection",
        )
    if detection is not None:
        return DetectionSpec(
            max_detections=detection.max_detections,
            score_threshold=float(detection.score_threshold),
            iou_threshold=float(detection.iou_threshold),
        )
    if audio is not None:
        return AudioSpec(
            sample_rate_hz=audio.sample_rate_hz,
            clip_ms=audio.clip_ms,
            long_clips=LongClips(_enum(LongClips, audio.long_clips, "long_clips")),
        )
    if sensor is not None:
        return SensorSpec(
            channels=tuple(sensor.channels),
            rate_hz=sensor.rate_hz,
            window=sensor.window,
            stride=sensor.stride,
            framing=SensorFraming(_enum(SensorFraming, sensor.framing, "framing")),
        )
    return None
