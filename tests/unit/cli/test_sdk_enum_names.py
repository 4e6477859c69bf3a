"""Enum names derived from the proto naming rule (``mobiletrain.proto_enums``), as the SDK and
CLI spell them, and the SDK's file discovery for ``upload``."""

from __future__ import annotations

import enum
from pathlib import Path

import pytest

from mobiletrain import proto_enums
from mobiletrain._proto.mobiletrain.v1 import common_pb2, models_pb2, tokens_pb2, training_pb2
from mobiletrain.client import sdk
from mobiletrain.core.types import Architecture, ColorMode, JobState, ModelFormat, Normalization


def test_the_prefix_follows_from_the_enum_name() -> None:
    assert proto_enums.prefix(common_pb2.TaskType) == "TASK_TYPE_"
    assert proto_enums.prefix(common_pb2.ModelFormat) == "MODEL_FORMAT_"
    assert proto_enums.prefix(common_pb2.ErrorCode) == "ERROR_CODE_"


@pytest.mark.parametrize(
    ("table", "domain"),
    [
        (sdk.FORMATS, ModelFormat),
        (sdk.COLOR_MODES, ColorMode),
        (sdk.NORMALIZATIONS, Normalization),
        (sdk.ARCHITECTURES, Architecture),
    ],
)
def test_the_sdk_spells_every_value_as_the_domain_does(
    table: dict[str, int], domain: type[enum.Enum]
) -> None:
    # The CLI's names are the domain's values (what REST and the manifest carry), so a value
    # added to the proto and the domain appears in the CLI without a hand-written table.
    assert set(table) == {m.value for m in domain}
    assert 0 not in table.values()


def test_names_and_numbers_round_trip() -> None:
    assert sdk.FORMATS["dynamic-int8"] == common_pb2.MODEL_FORMAT_DYNAMIC_INT8
    assert proto_enums.cli_name(common_pb2.ModelFormat, common_pb2.MODEL_FORMAT_DYNAMIC_INT8) == (
        "dynamic-int8"
    )
    assert proto_enums.cli_names(tokens_pb2.TokenKind) == {"admin": 1, "device": 2}
    assert proto_enums.cli_names(models_pb2.ReleaseMode) == {"auto": 1, "manual": 2}
    assert proto_enums.cli_name(common_pb2.ModelFormat, 999) == "999"  # a newer server's value


def test_domain_table_maps_by_member_name_and_refuses_gaps() -> None:
    table = proto_enums.domain_table(JobState, training_pb2.JobState)
    assert table[JobState.SUCCEEDED] == training_pb2.JOB_STATE_SUCCEEDED
    assert len(table) == len(JobState)

    class Wider(enum.Enum):
        QUEUED = "queued"
        PAUSED = "paused"  # no JOB_STATE_PAUSED on the wire

    with pytest.raises(ValueError, match=r"JOB_STATE_.*PAUSED"):
        proto_enums.domain_table(Wider, training_pb2.JobState)


def test_upload_discovery_takes_the_tasks_files_only(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    for name in ("1.PNG", "2.jpeg", "notes.txt", "3.webp"):
        (tmp_path / "cat" / name).write_bytes(b"x")
    (tmp_path / "loose.png").write_bytes(b"x")  # not in a label folder
    suffixes = sdk.task_suffixes("image-classification")
    found = sdk.scan_directory(tmp_path, suffixes)
    assert [(cid, label) for cid, label, _ in found] == [
        ("cat/1.PNG", "cat"),
        ("cat/2.jpeg", "cat"),
        ("cat/3.webp", "cat"),
    ]
    assert sdk.scan_directory(tmp_path, frozenset({".txt"}))[0][0] == "cat/notes.txt"


def test_each_task_names_its_sample_files_and_whether_the_client_resizes() -> None:
    assert sdk.task_suffixes("image-classification") == {".jpg", ".jpeg", ".png", ".webp"}
    assert sdk.task_suffixes("audio-classification") == {".wav"}
    assert sdk.task_suffixes("sensor-classification") == {".csv", ".json"}
    assert sdk.client_resizes("image-classification")
    assert not sdk.client_resizes("sensor-classification")
    with pytest.raises(sdk.InvalidArgument) as err:  # a newer server's task: one clear error
        sdk.task_suffixes("video-classification")
    assert err.value.code == 14
