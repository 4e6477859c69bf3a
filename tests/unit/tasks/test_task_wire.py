"""The task-kind part of the input contract on both wires (conversion only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobiletrain._proto.mobiletrain.v1 import common_pb2
from mobiletrain.api.grpc.serde_tasks import TASK_TYPES, task_spec_from_proto, task_spec_to_proto
from mobiletrain.api.rest.task_schemas import (
    AudioSpecModel,
    SensorSpecModel,
    task_spec_from_models,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    AudioSpec,
    LongClips,
    SensorFraming,
    SensorSpec,
    TaskSpec,
    TaskType,
)

SPECS: list[TaskSpec] = [
    AudioSpec(sample_rate_hz=8000, clip_ms=1500, long_clips=LongClips.SPLIT),
    SensorSpec(("gx", "gy"), 25.0, 40, 10, SensorFraming.PAD),
]


@pytest.mark.parametrize("spec", SPECS, ids=["audio", "sensor"])
def test_grpc_round_trip(spec: TaskSpec) -> None:
    msg = common_pb2.InputSpec()
    task_spec_to_proto(spec, msg)
    wire = common_pb2.InputSpec.FromString(msg.SerializeToString())
    assert task_spec_from_proto(wire) == spec


def test_grpc_absent_and_defaults() -> None:
    assert task_spec_from_proto(common_pb2.InputSpec()) is None
    msg = common_pb2.InputSpec()
    msg.sensor.SetInParent()
    assert task_spec_from_proto(msg) == SensorSpec()
    msg.sensor.framing = 99
    with pytest.raises(MobiletrainError) as err:
        task_spec_from_proto(msg)
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC
    assert TASK_TYPES[TaskType.SENSOR_CLASSIFICATION] == common_pb2.TASK_TYPE_SENSOR_CLASSIFICATION


def test_rest_models() -> None:
    sensor = SensorSpecModel.model_validate(SPECS[1].to_dict())
    assert task_spec_from_models(None, sensor) == SPECS[1]
    audio = AudioSpecModel.model_validate(SPECS[0].to_dict())
    assert task_spec_from_models(audio, None) == SPECS[0]
    assert task_spec_from_models(None, None) is None
    with pytest.raises(MobiletrainError) as err:
        task_spec_from_models(audio, sensor)
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC
    with pytest.raises(MobiletrainError) as err:
        task_spec_from_models(None, SensorSpecModel(framing="sideways"))
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC


def test_proto_enums_mirror_the_domain() -> None:
    """LongClips / SensorFraming: one proto value per domain member, comments name the wire
    string (as tests/unit/test_proto_drift.py checks for the older enums)."""
    for domain, proto_enum, prefix in (
        (LongClips, common_pb2.LongClips, "LONG_CLIPS_"),
        (SensorFraming, common_pb2.SensorFraming, "SENSOR_FRAMING_"),
    ):
        names = {v.name for v in proto_enum.DESCRIPTOR.values} - {prefix + "UNSPECIFIED"}
        assert names == {prefix + m.name for m in domain}
    source = (Path(__file__).parents[3] / "proto/mobiletrain/v1/common.proto").read_text()
    for member in (*LongClips, *SensorFraming):
        assert f'("{member.value}")' in source, member
