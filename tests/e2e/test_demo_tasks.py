"""``mobiletrain demo --task sensor``: the whole loop for motion data through the real CLI, an
embedded server and LiteRT, scored on wearers the model never saw (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mobiletrain import cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_sensor_demo_trains_and_scores_held_out_wearers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.console, "width", 200)
    result = CliRunner().invoke(cli.app, ["demo", "--task", "sensor", "--data-dir", str(tmp_path)])
    out = result.output
    assert result.exit_code == 0, out  # exit 0: float32 reached the pass mark (0.85) held out
    assert "uploaded: 128 accepted, 0 rejected" in out, out
    scores = dict(re.findall(r"│ (float32|int8)\s+│[^│]+│ ([01]\.\d{4})", out))
    assert float(scores["float32"]) >= 0.85 and float(scores["int8"]) >= 0.8, out
    # The finished job's bar shows its final state, never a stale "job ends in ~Ns".
    final_bar = [line for line in out.splitlines() if re.search(r"━ +\d+/\d+", line)][-1]
    assert "succeeded" in final_bar and "job ends in" not in final_bar, final_bar
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        f"sensor-{fmt}.tflite" for fmt in ("dynamic-int8", "float16", "float32", "int8")
    ]
