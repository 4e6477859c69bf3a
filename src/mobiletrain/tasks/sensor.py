"""Sensor time-series classification: CSV/JSON recordings, resampled and cut into windows.

A sample is one recording of the project's channels (accelerometer, gyroscope, ...):

- **CSV**: a header row of channel names, then one row per reading. An optional
  ``timestamp`` (seconds) or ``timestamp_ms`` column gives each reading's time; without it
  the readings are taken to be at the project's rate.
- **JSON**: ``{"rate_hz": 50, "channels": ["x", "y", "z"], "values": [[x, y, z], ...]}``,
  one inner list per reading.

Every project channel must be present (extra columns are ignored; the project's channel
order is what the model sees). Missing, NaN or infinite values are refused
(SENSOR_MISSING_VALUE). Recordings are resampled by linear interpolation to the project's
``rate_hz``, then framed (:func:`frames`): cut into ``window``-reading windows every
``stride`` readings, or, with framing ``pad``, one window per recording. A recording shorter
than a window is padded by repeating its last reading. NumPy only: the API process validates
uploads with this module, the trainer decodes with it, and the Dart client mirrors it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    CLASSIFIER_FORMATS,
    InputSpec,
    ModelFormat,
    SensorFraming,
    SensorSpec,
    TaskType,
)
from mobiletrain.core.validation import Limits
from mobiletrain.tasks.base import SampleInfo, check_size

TIMESTAMP_COLUMNS = {"timestamp": 1.0, "timestamp_s": 1.0, "time": 1.0, "timestamp_ms": 1e-3}
"""Column names read as each reading's time, with their factor to seconds."""
MAX_READINGS = 1_000_000
"""Most readings one recording may hold after resampling (about 5.5 h at 50 Hz)."""
MIN_READINGS = 2
CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Recording:
    """A decoded recording: ``values`` float64 ``(readings, channels)`` in the file's order."""

    channels: tuple[str, ...]
    values: np.ndarray
    rate_hz: float | None  # declared rate (JSON) or None
    timestamps_s: np.ndarray | None  # per reading (CSV timestamp column) or None
    media_type: str


def _corrupt(message: str) -> MobiletrainError:
    return MobiletrainError(ErrorCode.CORRUPT_SENSOR_DATA, message)


def _missing(message: str) -> MobiletrainError:
    return MobiletrainError(ErrorCode.SENSOR_MISSING_VALUE, message)


def _parse_json(text: str) -> Recording:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _corrupt(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or not {"rate_hz", "channels", "values"} <= set(doc):
        raise _corrupt('JSON sensor data needs the keys "rate_hz", "channels" and "values"')
    rate, channels, rows = doc["rate_hz"], doc["channels"], doc["values"]
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 100_000:
        raise _corrupt(f'"rate_hz" must be a positive number, got {rate!r}')
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) for c in channels)
    ):
        raise _corrupt('"channels" must be a non-empty list of names')
    if not isinstance(rows, list):
        raise _corrupt('"values" must be a list of readings, one list per reading')
    width = len(channels)
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise _corrupt(f"reading {i} must be a list of {width} numbers")
        for j, value in enumerate(row):
            if value is None:
                raise _missing(f"reading {i}, channel {channels[j]!r} is null")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _corrupt(f"reading {i}, channel {channels[j]!r} is not a number: {value!r}")
            out[i, j] = value
    return Recording(tuple(channels), out, float(rate), None, JSON_MEDIA_TYPE)


def _parse_csv(text: str) -> Recording:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise _corrupt("CSV has no header row") from None
    except csv.Error as exc:
        raise _corrupt(f"not valid CSV: {exc}") from None
    if not header or any(not h for h in header) or len(set(header)) != len(header):
        raise _corrupt("the CSV header must name every column once")
    rows: list[list[float]] = []
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line (a trailing newline)
            if len(row) != len(header):
                raise _corrupt(
                    f"line {line_no} has {len(row)} fields; the header has {len(header)}"
                )
            values: list[float] = []
            for name, cell in zip(header, row, strict=True):
                cell = cell.strip()
                if not cell:
                    raise _missing(f"line {line_no}, column {name!r} is empty")
                try:
                    values.append(float(cell))
                except ValueError:
                    raise _corrupt(
                        f"line {line_no}, column {name!r} is not a number: {cell[:32]!r}"
                    ) from None
            rows.append(values)
    except csv.Error as exc:
        raise _corrupt(f"not valid CSV: {exc}") from None
    array = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(header))
    time_cols = [h for h in header if h.lower() in TIMESTAMP_COLUMNS]
    if len(time_cols) > 1:
        raise _corrupt(f"more than one timestamp column: {time_cols}")
    timestamps = None
    channels = tuple(header)
    if time_cols:
        col = header.index(time_cols[0])
        timestamps = array[:, col] * TIMESTAMP_COLUMNS[time_cols[0].lower()]
        array = np.delete(array, col, axis=1)
        channels = tuple(h for h in header if h != time_cols[0])
    return Recording(channels, array, None, timestamps, CSV_MEDIA_TYPE)


def parse(data: bytes) -> Recording:
    """Decode CSV or JSON sensor data (by content: JSON starts with ``{``), without checks
    against a project. Raises CORRUPT_SENSOR_DATA / SENSOR_MISSING_VALUE."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _corrupt("sensor data must be UTF-8 text (CSV or JSON)") from None
    stripped = text.lstrip()
    recording = _parse_json(stripped) if stripped.startswith("{") else _parse_csv(text)
    if not np.isfinite(recording.values).all():
        row, col = np.argwhere(~np.isfinite(recording.values))[0]
        raise _missing(
            f"reading {int(row)}, channel {recording.channels[int(col)]!r} is NaN or infinite"
        )
    if recording.timestamps_s is not None and not np.isfinite(recording.timestamps_s).all():
        raise _missing("a timestamp is NaN or infinite")
    return recording


def resample(recording: Recording, spec: SensorSpec) -> np.ndarray:
    """The project's channels, in its order, at its rate: float32 ``(readings, channels)``.

    Linear interpolation on a uniform grid from the first reading's time; readings without
    timestamps are taken at the declared rate (JSON) or the project's rate (CSV).
    """
    missing = [c for c in spec.channels if c not in recording.channels]
    if missing:
        raise MobiletrainError(
            ErrorCode.SENSOR_CHANNELS_MISMATCH,
            f"the sample lacks the channels {missing}; it has {list(recording.channels)}, "
            f"the project needs {list(spec.channels)}",
        )
    order = [recording.channels.index(c) for c in spec.channels]
    values = recording.values[:, order]
    n = len(values)
    if n < MIN_READINGS:
        raise MobiletrainError(
            ErrorCode.SENSOR_TOO_SHORT,
            f"the recording has {n} readings; at least {MIN_READINGS} needed",
        )
    if recording.timestamps_s is not None:
        times = recording.timestamps_s - recording.timestamps_s[0]
        if not (np.diff(times) > 0).all():
            raise _corrupt("timestamps must increase from one reading to the next")
    else:
        rate = recording.rate_hz or spec.rate_hz
        if math.isclose(rate, spec.rate_hz, rel_tol=1e-9):
            return values.astype(np.float32)
        times = np.arange(n, dtype=np.float64) / rate
    count = math.floor(times[-1] * spec.rate_hz + 1e-9) + 1
    if count > MAX_READINGS:
        raise MobiletrainError(
            ErrorCode.SENSOR_TOO_LONG,
            f"the recording is {count} readings at {spec.rate_hz} Hz; the limit is {MAX_READINGS}",
        )
    grid = np.arange(count, dtype=np.float64) / spec.rate_hz
    out = np.empty((count, values.shape[1]), dtype=np.float32)
    for j in range(values.shape[1]):
        out[:, j] = np.interp(grid, times, values[:, j])
    return out


def frames(readings: np.ndarray, spec: SensorSpec) -> np.ndarray:
    """Model windows float32 ``(N, window, channels)`` of resampled readings.

    ``windows``: one window every ``stride`` readings (a recording shorter than a window
    gives one padded window); ``pad``: one window, the recording padded (or, if longer,
    cut to its first ``window`` readings, which validation refuses at upload).
    Padding repeats the last reading.
    """
    n, window = len(readings), spec.window
    if n < window:
        pad = np.repeat(readings[-1:], window - n, axis=0)
        return np.concatenate([readings, pad], axis=0)[np.newaxis].astype(np.float32)
    if spec.framing is SensorFraming.PAD:
        return readings[np.newaxis, :window].astype(np.float32)
    starts = range(0, n - window + 1, spec.stride)
    return np.stack([readings[s : s + window] for s in starts]).astype(np.float32)


def decode(data: bytes, spec: SensorSpec) -> np.ndarray:
    """Bytes as stored → model windows ``(N, window, channels)`` (see :func:`frames`)."""
    return frames(resample(parse(data), spec), spec)


class SensorClassification:
    """The sensor time-series kind (see :class:`mobiletrain.tasks.base.TaskKind`)."""

    task = TaskType.SENSOR_CLASSIFICATION
    short_name = "sensor"
    sample_extensions: tuple[str, ...] = (".csv", ".json")
    client_resizes = False
    media_types: tuple[str, ...] = (CSV_MEDIA_TYPE, JSON_MEDIA_TYPE)
    # The whole-classifier formats; the on-device training files assume an image backbone.
    export_formats: tuple[ModelFormat, ...] = CLASSIFIER_FORMATS
    reserved_labels: frozenset[str] = frozenset()

    def default_spec(self) -> InputSpec:
        """Three channels x, y, z at 50 Hz, 2 s windows every 1 s."""
        return InputSpec(task_spec=SensorSpec())

    def check_spec(self, spec: InputSpec) -> InputSpec:
        """The spec must carry a :class:`SensorSpec` (filled with the defaults if absent)."""
        if spec.task_spec is None:
            spec = InputSpec(task_spec=SensorSpec())
        if not isinstance(spec.task_spec, SensorSpec):
            raise MobiletrainError(
                ErrorCode.WRONG_TASK_SPEC,
                f"a sensor-classification project takes sensor settings, not {spec.task.value}",
            )
        spec.task_spec.validate()
        return spec

    def validate_sample(self, data: bytes, spec: InputSpec, limits: Limits) -> SampleInfo:
        """Parse in full, check channels and values, resample; ``pad`` framing refuses
        recordings longer than one window (SENSOR_TOO_LONG)."""
        check_size(data, limits)
        sensor = _sensor_spec(spec)
        recording = parse(data)
        readings = resample(recording, sensor)
        if sensor.framing is SensorFraming.PAD and len(readings) > sensor.window:
            raise MobiletrainError(
                ErrorCode.SENSOR_TOO_LONG,
                f"the recording is {len(readings)} readings at {sensor.rate_hz} Hz; the "
                f"project pads to one window of {sensor.window} and refuses longer ones",
            )
        return SampleInfo(
            media_type=recording.media_type, width=len(readings), height=len(sensor.channels)
        )

    def decode_examples(self, data: bytes, spec: InputSpec) -> np.ndarray:
        """float32 windows ``(N, window, channels)`` (see :func:`decode`)."""
        return decode(data, _sensor_spec(spec))

    def model_input(self, examples: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Raw readings: the model normalises them itself."""
        return np.asarray(examples, dtype=np.float32)

    def manifest_input(self, spec: InputSpec) -> dict[str, Any]:
        """float32 ``[1, window, channels]``, time-major, raw sensor units."""
        sensor = _sensor_spec(spec)
        return {
            "kind": "sensor-window",
            "dtype": "float32",
            "shape": [1, sensor.window, len(sensor.channels)],
            "layout": "batch, time, channel",
            "channels": list(sensor.channels),
            "rate_hz": sensor.rate_hz,
            "window": sensor.window,
            "window_seconds": sensor.window / sensor.rate_hz,
            "stride": sensor.stride,
            "framing": sensor.framing.value,
            "padding": "repeat the last reading",
            "values": "raw sensor units; per-channel normalisation runs inside the model",
        }


def _sensor_spec(spec: InputSpec) -> SensorSpec:
    if not isinstance(spec.task_spec, SensorSpec):
        raise MobiletrainError(ErrorCode.WRONG_TASK_SPEC, "the project has no sensor settings")
    return spec.task_spec


KIND = SensorClassification()
