"""Authentication and authorisation over both transports, against a real server.

Every gRPC method (from the service descriptors) and every REST route (from the OpenAPI
document) is called without a credential, so a new one cannot forget auth.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from typer.testing import CliRunner

from mobiletrain.api.grpc.server import SERVICE_NAMES
from mobiletrain.client.sdk import Client, ClientError, LocalSample
from mobiletrain.config import Settings
from mobiletrain.core import tokens as tokens_module
from mobiletrain.server import RunningServer, start_server


@dataclass
class Env:
    server: RunningServer
    admin: str
    grpc_address: str
    http: str


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        server = start_server(Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0))
    try:
        admin = (tmp_path / "data" / "admin-token").read_text().strip()
        assert admin in printed.getvalue()  # printed once, on the first start
        yield Env(
            server,
            admin,
            f"127.0.0.1:{server.grpc_port}",
            f"http://127.0.0.1:{server.http_port}",
        )
    finally:
        server.stop()


def _grpc_methods() -> list[tuple[str, bool, bool]]:
    """(full method name, client streaming, server streaming) of every mobiletrain rpc."""
    from google.protobuf import descriptor_pool

    import mobiletrain.api.grpc.server  # noqa: F401 - registers every file descriptor

    pool = descriptor_pool.Default()
    out = []
    for name in SERVICE_NAMES:
        service = pool.FindServiceByName(name)
        for m in service.methods:
            out.append((f"/{name}/{m.name}", m.client_streaming, m.server_streaming))
    return out


GRPC_METHODS = _grpc_methods()


@pytest.mark.parametrize("method,client_stream,server_stream", GRPC_METHODS)
def test_every_grpc_method_needs_a_token(
    env: Env, method: str, client_stream: bool, server_stream: bool
) -> None:
    ident: Callable[[bytes], bytes] = lambda b: b  # noqa: E731
    kwargs: dict[str, Any] = {"request_serializer": ident, "response_deserializer": ident}
    with grpc.insecure_channel(env.grpc_address) as channel:
        if client_stream and server_stream:
            stub: Any = channel.stream_stream(method, **kwargs)
        elif client_stream:
            stub = channel.stream_unary(method, **kwargs)
        elif server_stream:
            stub = channel.unary_stream(method, **kwargs)
        else:
            stub = channel.unary_unary(method, **kwargs)
        with pytest.raises(grpc.RpcError) as info:
            result = stub(iter([b""]) if client_stream else b"")
            if server_stream:
                list(result)
        err: Any = info.value
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert dict(err.trailing_metadata())["mobiletrain-error-code"] == "60"


def test_grpc_method_list_is_complete() -> None:
    names = {m[0] for m in GRPC_METHODS}
    assert "/mobiletrain.v1.DatasetService/UploadSamples" in names
    assert "/mobiletrain.v1.TokenService/CreateToken" in names
    assert len(names) == 39  # update when an rpc is added: it is then checked above


def _routes(openapi: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, item in openapi["paths"].items():
        for method in item:
            yield method, path


def test_every_rest_route_needs_a_token(env: Env) -> None:
    openapi = httpx.get(f"{env.http}/openapi.json").json()
    checked = 0
    for method, path in _routes(openapi):
        if path == "/healthz":
            continue
        url = env.http + path.replace("{", "").replace("}", "")
        for headers in ({}, {"Authorization": "Bearer mt_not-a-real-token"}):
            r = httpx.request(method, url, headers=headers)
            assert r.status_code == 401, (method, path, r.text)
            assert r.headers["x-mobiletrain-error-code"] == "60"  # HEAD has no body
        checked += 1
    assert checked >= 25
    assert httpx.get(f"{env.http}/healthz").status_code == 200
    assert "bearer" in str(openapi["components"]["securitySchemes"]).lower()


def test_admin_token_file_is_private_and_made_once(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin-token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    env.server.stop()
    again = start_server(Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0))
    try:
        assert path.read_text().strip() == env.admin  # no second bootstrap token
    finally:
        again.stop()
        env.server = again  # the fixture's stop() is harmless twice


def _make_project_with_samples(admin: Client, name: str, make_image: Callable[..., bytes]) -> Any:
    project = admin.create_project(name, width=16, height=16)
    admin.upload(name, [LocalSample(f"{name}-{i}", "ab"[i % 2], make_image(i)) for i in range(4)])
    return project


def test_device_tokens_see_only_their_project(env: Env, make_image: Callable[..., bytes]) -> None:
    with Client(env.grpc_address, token=env.admin) as admin:
        a = _make_project_with_samples(admin, "project-a", make_image)
        _make_project_with_samples(admin, "project-b", make_image)
        job_b = admin.start_job("project-b", epochs=1)
        admin.cancel_job(job_b.id)
        _, secret = admin.create_token("device", "project-a", "phone of ana", ttl_days=30)

    with Client(env.grpc_address, token=secret) as device:
        assert [p.name for p in device.list_projects()] == ["project-a"]
        assert device.get_project("project-a").id == a.id
        # Another project's things: "not found", exactly as for things that do not exist.
        for call in (
            lambda: device.get_project("project-b"),
            lambda: device.class_counts("project-b"),
            lambda: device.upload("project-b", [LocalSample("x", "a", make_image(9))]),
            lambda: device.get_job(job_b.id),
        ):
            with pytest.raises(ClientError) as err:
                call()
            assert err.value.code in (10, 40), err.value
        with pytest.raises(ClientError) as missing:
            device.get_project("no-such-project")
        with pytest.raises(ClientError) as hidden:
            device.get_project("project-b")
        assert (missing.value.code, missing.value.message.replace("no-such-project", "X")) == (
            hidden.value.code,
            hidden.value.message.replace("project-b", "X"),
        )
        # What a phone does is allowed ...
        report = device.upload("project-a", [LocalSample("new", "a", make_image(7))])
        assert report.accepted == 1
        # ... what an administrator does is not.
        for call in (
            lambda: device.create_project("mine"),
            lambda: device.start_job("project-a"),
            lambda: device.create_token("device", "project-a"),
        ):
            with pytest.raises(ClientError) as err:
                call()
            assert (err.value.code, err.value.status) == (61, "PERMISSION_DENIED")

    r = httpx.get(
        f"{env.http}/v1/projects/project-b", headers={"Authorization": f"Bearer {secret}"}
    )
    assert (r.status_code, r.json()["code"]) == (404, 10)
    r = httpx.post(
        f"{env.http}/v1/projects",
        json={"name": "x"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert (r.status_code, r.json()["code"]) == (403, 61)


def test_revoked_and_expired_tokens_stop_working(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_module, "CACHE_SECONDS", 0.0)
    headers = {"Authorization": f"Bearer {env.admin}"}
    created = httpx.post(
        f"{env.http}/v1/tokens", json={"kind": "admin", "name": "ci"}, headers=headers
    ).json()
    new = {"Authorization": f"Bearer {created['token']}"}
    assert httpx.get(f"{env.http}/v1/projects", headers=new).status_code == 200
    listed = httpx.get(f"{env.http}/v1/tokens", headers=headers).json()["tokens"]
    assert created["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)  # secrets are never listed
    revoked = httpx.delete(f"{env.http}/v1/tokens/{created['id']}", headers=headers)
    assert revoked.json()["revoked_at"] is not None
    r = httpx.get(f"{env.http}/v1/projects", headers=new)
    assert (r.status_code, r.json()["code"]) == (401, 60)

    # An expired token (its record aged by hand) is refused too.
    store = env.server.container.store
    token, secret = env.server.container.tokens.create(
        tokens_module.Role.ADMIN, None, "short", ttl_days=1
    )
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "UPDATE tokens SET expires_at = ? WHERE id = ?",
            (datetime.now(UTC) - timedelta(seconds=1), token.id),
        )
    time.sleep(0.01)
    r = httpx.get(f"{env.http}/v1/projects", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401


def test_cli_tokens_commands(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from mobiletrain import cli
    from mobiletrain.cli import app

    monkeypatch.setattr(cli.console, "width", 200)  # tables must not wrap the ids

    runner = CliRunner()
    base = ["--server", env.grpc_address, "--token", env.admin]
    with Client(env.grpc_address, token=env.admin) as admin:
        admin.create_project("cli-project")
    made = runner.invoke(app, [*base, "tokens", "create", "--project", "cli-project"])
    assert made.exit_code == 0, made.output
    token_id = made.output.split()[1]
    listed = runner.invoke(app, [*base, "tokens", "list"])
    assert token_id in listed.output and "device" in listed.output
    assert runner.invoke(app, [*base, "tokens", "revoke", token_id]).exit_code == 0
    denied = runner.invoke(
        app, ["--server", env.grpc_address, "--token", "mt_wrong", "projects", "list"]
    )
    assert denied.exit_code == 1 and "error 60" in denied.output


def test_rate_limits_and_stream_limits_per_token(
    tmp_path: Path, make_image: Callable[..., bytes]
) -> None:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    server = start_server(
        Settings(
            data_dir=tmp_path / "limits",
            grpc_port=0,
            http_port=0,
            rate_limit_per_second=0.5,
            rate_limit_burst=12,
            max_streams_per_token=1,
        )
    )
    http = f"http://127.0.0.1:{server.http_port}"
    try:
        admin = (tmp_path / "limits" / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {admin}"}
        # A second token, made without a call of the first one.
        other = server.container.tokens.create_bootstrap_admin()
        with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as client:
            _make_project_with_samples(client, "p", make_image)
            job = client.start_job("p", epochs=1)
            first = client.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id))
            next(first)  # the stream is open and holds the token's only slot
            with pytest.raises(ClientError) as err:
                list(client.watch_job(job.id))
            assert (err.value.code, err.value.status) == (72, "RESOURCE_EXHAUSTED")
            r = httpx.get(f"{http}/v1/jobs/{job.id}/events", headers=headers)
            assert (r.status_code, r.json()["code"]) == (429, 72)
            first.cancel()
            # The burst of 12 requests is spent now: this token is refused ...
            codes = []
            for _ in range(12):
                try:
                    client.get_project("p")
                except ClientError as exc:
                    codes.append(exc.code)
            assert codes and set(codes) == {71}
            r = httpx.get(f"{http}/v1/projects", headers=headers)
            assert (r.status_code, r.json()["code"]) == (429, 71)
        # ... while another token still gets through.
        with Client(f"127.0.0.1:{server.grpc_port}", token=other) as fresh:
            assert fresh.get_project("p").name == "p"
            fresh.cancel_job(job.id)
    finally:
        server.stop()
