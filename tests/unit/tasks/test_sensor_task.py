"""The sensor task kind's codec and validation (pure: no TensorFlow, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, SensorFraming, SensorSpec, TaskType
from mobiletrain.core.validation import Limits
from mobiletrain.tasks import kind, sample_extensions, spec_for, validate_sample
from mobiletrain.tasks.sensor import decode, frames, parse, resample

SPEC = SensorSpec(channels=("ax", "ay", "az"), rate_hz=10.0, window=8, stride=4)
PROJECT = InputSpec(task_spec=SPEC)


def _csv(rows: list[list[float]], header: str = "ax,ay,az") -> bytes:
    return (header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n").encode()


def _code(data: bytes, spec: InputSpec = PROJECT) -> ErrorCode:
    with pytest.raises(MobiletrainError) as info:
        validate_sample(spec, data, Limits())
    return info.value.code


def test_csv_and_json_decode_to_the_same_windows() -> None:
    values = np.arange(60, dtype=np.float64).reshape(20, 3)
    as_csv = _csv(values.tolist())
    as_json = json.dumps(
        {"rate_hz": 10, "channels": ["ax", "ay", "az"], "values": values.tolist()}
    ).encode()
    a, b = decode(as_csv, SPEC), decode(as_json, SPEC)
    # 20 readings, window 8, stride 4: starts 0, 4, 8, 12.
    assert a.shape == (4, 8, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1, 0], values[4])


def test_channels_are_reordered_and_extra_columns_ignored() -> None:
    data = _csv([[1, 2, 3, 9], [4, 5, 6, 9]], header="az,ax,ay,temperature")
    readings = resample(parse(data), SPEC)
    np.testing.assert_array_equal(readings, [[2, 3, 1], [5, 6, 4]])


def test_timestamps_resample_to_the_project_rate() -> None:
    # 20 Hz readings of a ramp, timestamps in ms: at 10 Hz every other one remains.
    t = np.arange(21) * 50.0
    rows = [[ti, ti / 1000, 2 * ti / 1000, 1.0] for ti in t]
    readings = resample(parse(_csv(rows, header="timestamp_ms,ax,ay,az")), SPEC)
    assert readings.shape == (11, 3)
    np.testing.assert_allclose(readings[:, 0], np.arange(11) * 0.1, atol=1e-6)
    # JSON declaring 5 Hz is interpolated up to 10 Hz.
    doc = {"rate_hz": 5, "channels": ["ax", "ay", "az"], "values": [[0, 0, 0], [1, 2, 3]]}
    up = resample(parse(json.dumps(doc).encode()), SPEC)
    np.testing.assert_allclose(up[:, 1], [0, 1, 2])


def test_short_recordings_pad_with_the_last_reading_and_pad_framing_refuses_long_ones() -> None:
    short = frames(np.array([[1, 1, 1], [2, 2, 2]], np.float32), SPEC)
    assert short.shape == (1, 8, 3)
    np.testing.assert_array_equal(short[0, -1], [2, 2, 2])
    pad = InputSpec(task_spec=SensorSpec(("ax", "ay", "az"), 10.0, 8, 4, SensorFraming.PAD))
    assert validate_sample(pad, _csv([[0, 0, 0]] * 8), Limits()).width == 8
    assert _code(_csv([[0, 0, 0]] * 9), pad) is ErrorCode.SENSOR_TOO_LONG


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_SAMPLE),
        (b"\xff\xd8\xff\xe0 a jpeg", ErrorCode.CORRUPT_SENSOR_DATA),
        (b"ax,ay,az\n1,2,nan\n3,4,5\n", ErrorCode.SENSOR_MISSING_VALUE),
        (b"ax,ay,az\n1,2,\n3,4,5\n", ErrorCode.SENSOR_MISSING_VALUE),
        (b"ax,ay,az\n1,2,inf\n3,4,5\n", ErrorCode.SENSOR_MISSING_VALUE),
        (b"ax,ay,az\n1,2\n", ErrorCode.CORRUPT_SENSOR_DATA),
        (b"ax,ay,az\n1,2,x\n3,4,5\n", ErrorCode.CORRUPT_SENSOR_DATA),
        (b"ax,ay\n1,2\n3,4\n", ErrorCode.SENSOR_CHANNELS_MISMATCH),
        (b"ax,ay,az\n1,2,3\n", ErrorCode.SENSOR_TOO_SHORT),
        (b"timestamp,ax,ay,az\n1,1,2,3\n0.5,1,2,3\n", ErrorCode.CORRUPT_SENSOR_DATA),
        (
            b'{"rate_hz": 10, "channels": ["ax","ay","az"], "values": [[1,2,null],[1,2,3]]}',
            ErrorCode.SENSOR_MISSING_VALUE,
        ),
        (
            b'{"rate_hz": 10, "channels": ["ax","ay","az"], "values": [[1,2],[1,2,3]]}',
            ErrorCode.CORRUPT_SENSOR_DATA,
        ),
        (b'{"channels": ["ax","ay","az"], "values": []}', ErrorCode.CORRUPT_SENSOR_DATA),
        (
            b'{"rate_hz": 10, "channels": ["ax","ay","az"], "values": [[1,2,3],[1,2,NaN]]}',
            ErrorCode.SENSOR_MISSING_VALUE,
        ),
    ],
)
def test_bad_samples_get_stable_codes(data: bytes, code: ErrorCode) -> None:
    assert _code(data) is code


def test_sample_info_and_size_limit() -> None:
    info = validate_sample(PROJECT, _csv([[0, 0, 0]] * 30), Limits())
    assert (info.media_type, info.width, info.height) == ("text/csv", 30, 3)
    with pytest.raises(MobiletrainError) as err:
        validate_sample(PROJECT, _csv([[0, 0, 0]] * 30), Limits(max_sample_bytes=50))
    assert err.value.code is ErrorCode.SAMPLE_TOO_LARGE


def test_specs_and_registry() -> None:
    spec = spec_for(TaskType.SENSOR_CLASSIFICATION, None)
    assert spec.task is TaskType.SENSOR_CLASSIFICATION and spec.task_spec == SensorSpec()
    assert InputSpec.from_dict(PROJECT.to_dict()) == PROJECT
    assert InputSpec.from_dict(InputSpec().to_dict()) == InputSpec()
    assert sample_extensions("sensor-classification") == {".csv", ".json"}
    assert sample_extensions(TaskType.IMAGE_CLASSIFICATION) >= {".jpg", ".png"}
    with pytest.raises(MobiletrainError) as err:
        spec_for(TaskType.IMAGE_CLASSIFICATION, PROJECT)
    assert err.value.code is ErrorCode.WRONG_TASK_SPEC
    for bad in (
        SensorSpec(channels=()),
        SensorSpec(channels=("a", "a")),
        SensorSpec(window=8, stride=9),
        SensorSpec(rate_hz=0),
    ):
        with pytest.raises(MobiletrainError) as err:
            spec_for(TaskType.SENSOR_CLASSIFICATION, InputSpec(task_spec=bad))
        assert err.value.code is ErrorCode.INVALID_INPUT_SPEC
    manifest = kind(TaskType.SENSOR_CLASSIFICATION).manifest_input(PROJECT)
    assert manifest["shape"] == [1, 8, 3] and manifest["channels"] == ["ax", "ay", "az"]
