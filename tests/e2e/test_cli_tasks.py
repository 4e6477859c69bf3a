"""The CLI for audio and sensor projects (issue 20), against a real server: ``projects create
--task audio|sensor`` with the task's settings, ``upload DIR/<label>/*.wav|*.csv|*.json`` taking
only the task's files, and the projects table saying what each project takes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mobiletrain import cli
from mobiletrain.config import Settings
from mobiletrain.server import start_server
from mobiletrain.tasks.audio_codec import encode_wav
from mobiletrain.tasks.sensor_synth import write_demo_dataset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    data = tmp_path_factory.mktemp("cli-tasks")
    with contextlib.redirect_stdout(io.StringIO()):
        running = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
    try:
        admin = (data / "admin-token").read_text().strip()
        yield ["--server", f"127.0.0.1:{running.grpc_port}", "--token", admin]
    finally:
        running.stop()


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(cli.console, "width", 200)  # tables must not wrap
    result = CliRunner().invoke(cli.app, args)
    return result.exit_code, result.output


def test_sensor_project_takes_csv_and_json_recordings(
    base: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = [*base, "projects", "create", "motion", "--task", "sensor"]
    code, out = _run([*create, "--channels", "ax,ay,az", "--rate-hz", "50", "--window", "100"],
                     monkeypatch)  # fmt: skip
    assert code == 0, out
    folder = tmp_path / "motion"
    write_demo_dataset(folder, wearer_ids=[0], per_label=3)  # CSV, timestamped CSV, JSON
    (folder / "walk" / "photo.png").write_bytes(b"\x89PNG not a recording")  # not sensor data
    recordings = [p for p in folder.rglob("*") if p.suffix in (".csv", ".json")]
    assert {p.suffix for p in recordings} == {".csv", ".json"}
    code, out = _run([*base, "upload", str(folder), "-p", "motion"], monkeypatch)
    assert code == 0, out
    assert f"accepted {len(recordings)}, duplicates 0, rejected 0" in out, out
    code, out = _run([*base, "projects", "list"], monkeypatch)
    assert "ax,ay,az @ 50 Hz, window 100" in out, out


def test_audio_project_takes_wav_files(
    base: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _run([*base, "projects", "create", "words", "--task", "audio", "--clip-ms",
                      "1000", "--long-clips", "split"], monkeypatch)  # fmt: skip
    assert code == 0, out
    t = np.arange(16000) / 16000
    for label, hz in (("low", 220.0), ("high", 1760.0)):
        (tmp_path / label).mkdir()
        for i in range(3):
            tone = 0.3 * np.sin(2 * np.pi * hz * (1 + 0.01 * i) * t)
            (tmp_path / label / f"{i}.wav").write_bytes(encode_wav(tone, 16000))
        (tmp_path / label / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    code, out = _run([*base, "upload", str(tmp_path), "-p", "words"], monkeypatch)
    assert code == 0, out
    assert "accepted 6, duplicates 0, rejected 0" in out, out
    code, out = _run([*base, "projects", "list"], monkeypatch)
    assert "audio 16000 Hz, 1000 ms" in out, out


def test_task_mistakes_are_one_usage_line(
    base: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _run([*base, "projects", "create", "x", "--task", "sensor", "--clip-ms", "500"],
                     monkeypatch)  # fmt: skip
    assert code == 2 and "--clip-ms apply to audio projects (add --task audio)" in out, out
    code, out = _run([*base, "projects", "create", "x", "--task", "video"], monkeypatch)
    assert code == 2 and "sensor-classification" in out, out
    code, out = _run([*base, "projects", "create", "x", "--task", "sensor", "--framing", "crop"],
                     monkeypatch)  # fmt: skip
    assert code == 2 and "windows" in out, out
    _run([*base, "projects", "create", "empty-motion", "--task", "sensor"], monkeypatch)
    (tmp_path / "walk").mkdir()
    (tmp_path / "walk" / "a.png").write_bytes(b"\x89PNG")
    code, out = _run([*base, "upload", str(tmp_path), "-p", "empty-motion"], monkeypatch)
    assert code == 2 and "no .csv or .json files in" in out, out
