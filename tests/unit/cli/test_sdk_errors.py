"""The SDK's error classes: one per gRPC status of the server's error catalogue, all under
``ClientError``, raised by a real server (and by a refused connection)."""

from __future__ import annotations

import contextlib
import io
import pickle
import socket
from collections.abc import Iterator

import pytest

from mobiletrain.client import errors
from mobiletrain.client.sdk import Client, ClientError
from mobiletrain.config import Settings
from mobiletrain.core.errors import ErrorCode
from mobiletrain.server import RunningServer, start_server


def test_every_status_of_the_catalogue_has_its_class() -> None:
    classes = {c.status_name: c for c in ClientError.__subclasses__()}
    for code in ErrorCode:
        cls = classes.get(code.grpc_status)
        assert cls is not None, f"{code.name}: no ClientError subclass for {code.grpc_status}"
        err = ClientError(code.number, code.grpc_status, "m")
        assert type(err) is cls and isinstance(err, ClientError)
        assert err.error_code is code


def test_built_errors_keep_their_fields_and_class() -> None:
    err = ClientError(10, "NOT_FOUND", "project 'x' not found")
    assert isinstance(err, errors.NotFound)
    assert (err.code, err.status, err.message) == (10, "NOT_FOUND", "project 'x' not found")
    assert str(err) == "[10] NOT_FOUND: project 'x' not found"
    copy = pickle.loads(pickle.dumps(err))  # crosses process pools intact
    assert type(copy) is errors.NotFound and copy.code == 10
    odd = ClientError(0, "CANCELLED", "stopped")  # a status no catalogue code uses
    assert type(odd) is ClientError and odd.error_code is None
    assert ClientError(999, "NOT_FOUND", "newer server").error_code is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    data = tmp_path_factory.mktemp("sdk-errors")
    with contextlib.redirect_stdout(io.StringIO()):
        running = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
    try:
        yield running, (data / "admin-token").read_text().strip()
    finally:
        running.stop()


def test_a_real_server_raises_the_status_class_with_the_catalogue_code(
    server: tuple[RunningServer, str],
) -> None:
    running, admin = server
    address = f"127.0.0.1:{running.grpc_port}"
    with Client(address, token=admin) as client:
        with pytest.raises(errors.NotFound) as missing:
            client.get_project("no-such-project")
        assert missing.value.error_code is ErrorCode.PROJECT_NOT_FOUND
        client.create_project("taken")
        with pytest.raises(errors.AlreadyExists):
            client.create_project("taken")
        with pytest.raises(errors.InvalidArgument) as bad:
            client.create_project("bad name with spaces/and slashes")
        assert bad.value.code == ErrorCode.INVALID_NAME.number
    with Client(address, token="mt_wrong") as stranger, pytest.raises(errors.Unauthenticated):
        stranger.list_projects()


def test_a_refused_connection_is_unavailable_with_code_0() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"127.0.0.1:{port}", token="mt_x") as client, pytest.raises(ClientError) as err:
        client.list_projects()
    assert type(err.value) is errors.Unavailable and err.value.code == 0
