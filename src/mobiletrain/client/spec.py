"""Names and project settings as the CLI and REST spell them.

The tables derive from the proto naming rule (:mod:`mobiletrain.proto_enums`):
``MODEL_FORMAT_DYNAMIC_INT8`` is ``dynamic-int8``. :func:`audio_spec` and :func:`sensor_spec`
build the settings of audio and sensor projects for :meth:`Client.create_project
<mobiletrain.client.sdk.Client.create_project>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from mobiletrain._proto.mobiletrain.v1 import common_pb2, models_pb2, tokens_pb2, training_pb2
from mobiletrain.client.errors import ClientError
from mobiletrain.proto_enums import cli_names

R = TypeVar("R")

FORMATS = cli_names(common_pb2.ModelFormat)
COLOR_MODES = cli_names(common_pb2.ColorMode)
NORMALIZATIONS = cli_names(common_pb2.Normalization)
ARCHITECTURES = cli_names(training_pb2.Architecture)
TASKS = cli_names(common_pb2.TaskType)
LONG_CLIPS = cli_names(common_pb2.LongClips)
SENSOR_FRAMINGS = cli_names(common_pb2.SensorFraming)
TOKEN_KINDS = cli_names(tokens_pb2.TokenKind)
RELEASE_MODES = cli_names(models_pb2.ReleaseMode)


def task_name(task: str) -> str:
    """The wire name of a task, also from its short name: ``audio`` -> ``audio-classification``,
    ``detection`` -> ``object-detection``."""
    for name in (task, f"{task}-classification", f"object-{task}"):
        if name in TASKS:
            return name
    raise ClientError(
        14, "INVALID_ARGUMENT", f"unsupported task {task!r}; allowed: {', '.join(TASKS)}"
    )


def audio_spec(
    sample_rate_hz: int = 0, clip_ms: int = 0, long_clips: str = ""
) -> common_pb2.AudioSpec:
    """An audio project's settings; 0 / "" leave the server's default (16 kHz, 1 s clips,
    ``reject`` longer clips; ``split`` cuts them into clips)."""
    return common_pb2.AudioSpec(
        sample_rate_hz=sample_rate_hz,
        clip_ms=clip_ms,
        long_clips=_choice(LONG_CLIPS, long_clips, "long_clips") if long_clips else None,
    )


def sensor_spec(
    channels: Iterable[str] = (),
    rate_hz: float = 0.0,
    window: int = 0,
    stride: int = 0,
    framing: str = "",
) -> common_pb2.SensorSpec:
    """A sensor project's settings: channel names in order, sampling rate, window and stride
    in readings, ``windows`` (cut recordings) or ``pad`` framing; 0 / empty leave the server's
    default (x, y, z at 50 Hz, 2 s windows every 1 s)."""
    return common_pb2.SensorSpec(
        channels=list(channels),
        rate_hz=rate_hz,
        window=window,
        stride=stride,
        framing=_choice(SENSOR_FRAMINGS, framing, "framing") if framing else None,
    )


def detection_spec(
    max_detections: int = 0, score_threshold: float = 0.0, iou_threshold: float = 0.0
) -> common_pb2.DetectionSpec:
    """An object-detection project's post-processing settings; 0 leaves the server's default
    (10 boxes, score 0.25, IoU 0.5)."""
    return common_pb2.DetectionSpec(
        max_detections=max_detections,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
    )


def _choice(table: dict[str, R], value: str, what: str) -> R:
    if value not in table:
        allowed = ", ".join(table)
        raise ClientError(13, "INVALID_ARGUMENT", f"{what} {value!r} is not one of: {allowed}")
    return table[value]
