"""The worker never builds a path from a client string beyond one plain file name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mobiletrain.compute.worker import _base_model_path
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import Hyperparameters, Job, JobState


def _job(base_model: str) -> Job:
    return Job(
        "j", "p", JobState.RUNNING, Hyperparameters(base_model=base_model), datetime.now(UTC)
    )


@pytest.mark.parametrize(
    "name", ["../secret.keras", "/etc/passwd", "a/b.keras", "..", ".", "sub\\..\\x.keras"]
)
def test_base_model_names_cannot_escape_the_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "secret.keras").write_bytes(b"x")
    with pytest.raises(MobiletrainError) as err:
        _base_model_path(_job(name), tmp_path / "models")
    assert err.value.code is ErrorCode.INVALID_HYPERPARAMETERS


def test_base_model_needs_a_configured_folder_and_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(MobiletrainError):
        _base_model_path(_job("m.keras"), None)
    with pytest.raises(MobiletrainError):
        _base_model_path(_job("missing.keras"), tmp_path)
    (tmp_path / "m.keras").write_bytes(b"x")
    assert _base_model_path(_job("m.keras"), tmp_path) == tmp_path / "m.keras"
    assert _base_model_path(_job(""), tmp_path) is None
