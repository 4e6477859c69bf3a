"""Every command reports a failed call the same way: one line, exit code 1, no traceback.

Runs the real CLI against an address where nothing listens (gRPC answers UNAVAILABLE at once).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mobiletrain.cli import app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> str:
    return f"127.0.0.1:{_closed_port()}"


def _callbacks(group: typer.Typer, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for info in group.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "?")
        out[f"{prefix}{name}"] = info.callback
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        out |= _callbacks(sub.typer_instance, f"{prefix}{sub.name} ")
    return out


def test_every_command_is_registered_through_the_one_error_mechanism() -> None:
    callbacks = _callbacks(app)
    assert len(callbacks) >= 25, sorted(callbacks)
    for name, callback in callbacks.items():
        assert getattr(callback, "reports_client_errors", False), name


@pytest.mark.parametrize(
    "args",
    [
        ["projects", "list"],
        ["projects", "create", "p"],
        ["projects", "delete", "p", "--yes"],
        ["tokens", "list"],
        ["tokens", "create", "--project", "p"],
        ["tokens", "revoke", "t"],
        ["jobs", "list", "-p", "p"],
        ["jobs", "cancel", "0" * 36],
        ["train", "-p", "p"],
        ["models", "list", "-p", "p"],
        ["models", "show", "-p", "p"],
        ["models", "history", "-p", "p"],
        ["models", "policy", "-p", "p"],
        ["models", "promote", "-p", "p", "1"],
        ["models", "rollback", "-p", "p"],
    ],
)
def test_an_unreachable_server_is_one_line_and_exit_1(server: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["--server", server, "--token", "mt_x", *args])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error 0 (UNAVAILABLE): cannot reach a mobiletrain gRPC server")
    assert "mobiletrain serve" in lines[0]


def test_upload_and_predict_report_the_same_way(server: str, tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.png").write_bytes(b"\x89PNG")
    base = ["--server", server, "--token", "mt_x"]
    for args in (
        ["upload", str(tmp_path), "-p", "p"],
        ["predict", str(tmp_path / "cat" / "1.png"), "-p", "p"],
    ):
        result = CliRunner().invoke(app, [*base, *args])
        assert result.exit_code == 1, result.output
        assert "error 0 (UNAVAILABLE)" in result.output
