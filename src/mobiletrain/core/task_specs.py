"""The task-specific parts of an input contract: audio, sensor and detection settings.

Split from :mod:`mobiletrain.core.types` (which re-exports every name) to keep modules small;
plain frozen dataclasses with their own validation, no transport or TensorFlow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from mobiletrain.core.errors import ErrorCode, MobiletrainError


def _bad_spec(message: str) -> MobiletrainError:
    return MobiletrainError(ErrorCode.INVALID_INPUT_SPEC, message)


def _parse_enum(enum_type: type[enum.StrEnum], value: Any, what: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise _bad_spec(f"unknown {what} {value!r}; allowed: {allowed}") from None


class LongClips(enum.StrEnum):
    """What an audio clip longer than the project's clip length becomes."""

    REJECT = "reject"  # refused at upload (AUDIO_TOO_LONG)
    SPLIT = "split"  # cut into clip-length pieces, each one training example


@dataclass(frozen=True)
class AudioSpec:
    """Input contract of an audio-classification project.

    The app feeds ``clip_samples`` float32 PCM values in -1..1, mono, at ``sample_rate_hz``
    (shape ``[1, clip_samples]``); the log-mel front end runs inside the model.
    """

    sample_rate_hz: int = 16_000
    clip_ms: int = 1000
    long_clips: LongClips = LongClips.REJECT

    @property
    def clip_samples(self) -> int:
        """PCM values per clip at the project's rate."""
        return self.sample_rate_hz * self.clip_ms // 1000

    def validate(self) -> None:
        """Raise INVALID_INPUT_SPEC unless rate and clip length suit a phone microphone."""
        if not 4_000 <= self.sample_rate_hz <= 48_000:
            raise _bad_spec(f"sample_rate_hz must be in 4000..48000, got {self.sample_rate_hz}")
        if not 100 <= self.clip_ms <= 10_000:
            raise _bad_spec(f"clip_ms must be in 100..10000, got {self.clip_ms}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (manifests, REST, storage)."""
        return {
            "sample_rate_hz": self.sample_rate_hz,
            "clip_ms": self.clip_ms,
            "clip_samples": self.clip_samples,
            "long_clips": self.long_clips.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AudioSpec:
        """Inverse of :meth:`to_dict`; absent keys take the defaults, derived ones are ignored."""
        default = cls()
        return cls(
            sample_rate_hz=int(data.get("sample_rate_hz") or default.sample_rate_hz),
            clip_ms=int(data.get("clip_ms") or default.clip_ms),
            long_clips=_parse_enum(LongClips, data.get("long_clips") or "reject", "long_clips"),
        )


class SensorFraming(enum.StrEnum):
    """How a sensor recording becomes model windows."""

    # Cut into windows of ``window`` readings every ``stride`` readings (a recording shorter
    # than one window is padded to one window).
    WINDOWS = "windows"
    # One window per recording: shorter ones padded, longer ones refused (SENSOR_TOO_LONG).
    PAD = "pad"


@dataclass(frozen=True)
class SensorSpec:
    """Input contract of a sensor time-series project.

    The app feeds ``window`` readings of ``channels`` (in this order) taken at ``rate_hz``,
    float32 in the sensor's own units, shape ``[1, window, len(channels)]`` (time-major);
    padding repeats the last reading. Normalisation runs inside the model.
    """

    channels: tuple[str, ...] = ("x", "y", "z")
    rate_hz: float = 50.0
    window: int = 100
    stride: int = 50
    framing: SensorFraming = SensorFraming.WINDOWS

    def validate(self) -> None:
        """Raise INVALID_INPUT_SPEC for empty/duplicate channels or out-of-range sizes."""
        if not 1 <= len(self.channels) <= 64:
            raise _bad_spec(f"channels must name 1..64 channels, got {len(self.channels)}")
        if len(set(self.channels)) != len(self.channels):
            raise _bad_spec(f"channel names must be unique, got {list(self.channels)}")
        for name in self.channels:
            if not name or not name.strip() or len(name) > 64 or "," in name:
                raise _bad_spec(f"bad channel name {name!r} (1..64 characters, no comma)")
        if not 0.1 <= self.rate_hz <= 10_000:
            raise _bad_spec(f"rate_hz must be in 0.1..10000, got {self.rate_hz}")
        if not 4 <= self.window <= 10_000:
            raise _bad_spec(f"window must be 4..10000 readings, got {self.window}")
        if not 1 <= self.stride <= self.window:
            raise _bad_spec(f"stride must be in 1..window ({self.window}), got {self.stride}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (manifests, REST, storage)."""
        return {
            "channels": list(self.channels),
            "rate_hz": self.rate_hz,
            "window": self.window,
            "stride": self.stride,
            "framing": self.framing.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensorSpec:
        """Inverse of :meth:`to_dict`; absent keys take the defaults."""
        default = cls()
        channels = data.get("channels") or default.channels
        if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
            raise _bad_spec("channels must be a list of names")
        return cls(
            channels=tuple(channels),
            rate_hz=float(data.get("rate_hz") or default.rate_hz),
            window=int(data.get("window") or default.window),
            stride=int(data.get("stride") or default.stride),
            framing=_parse_enum(SensorFraming, data.get("framing") or "windows", "framing"),
        )


@dataclass(frozen=True)
class DetectionSpec:
    """Post-processing settings of an object-detection project.

    The image fields of :class:`~mobiletrain.core.types.InputSpec` (size, colour,
    normalisation) describe the model input as for image classification. The exported model
    decodes its own output and runs non-maximum suppression inside: it returns at most
    ``max_detections`` boxes, drops those scoring below ``score_threshold`` and suppresses a
    box overlapping a higher-scoring one of the same class by more than ``iou_threshold``.
    """

    max_detections: int = 10
    score_threshold: float = 0.25
    iou_threshold: float = 0.5

    def validate(self) -> None:
        """Raise INVALID_INPUT_SPEC for out-of-range settings."""
        if not 1 <= self.max_detections <= 100:
            raise _bad_spec(f"max_detections must be in 1..100, got {self.max_detections}")
        if not 0.0 <= self.score_threshold < 1.0:
            raise _bad_spec(f"score_threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise _bad_spec(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (manifests, REST, storage)."""
        return {
            "max_detections": self.max_detections,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionSpec:
        """Inverse of :meth:`to_dict`; absent (or zero, as proto3 sends unset) keys take the
        defaults."""
        default = cls()
        return cls(
            max_detections=int(data.get("max_detections") or default.max_detections),
            score_threshold=float(data.get("score_threshold") or default.score_threshold),
            iou_threshold=float(data.get("iou_threshold") or default.iou_threshold),
        )


TaskSpec = AudioSpec | SensorSpec | DetectionSpec
"""The task-specific part of an input contract (image classification has none)."""
