"""TLS for gRPC and HTTPS from certificate files, and mutual TLS; certificates made here."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mobiletrain.client.sdk import Client, ClientError
from mobiletrain.config import Settings
from mobiletrain.server import start_server

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="TLS tests make certificates with the openssl CLI"
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem",
                 cwd=d)  # fmt: skip
    return d


def _start(tmp_path: Path, pki: Path, mutual: bool) -> Iterator[tuple[int, int, str]]:
    server = start_server(
        Settings(
            data_dir=tmp_path / "data",
            grpc_port=0,
            http_port=0,
            tls_cert_file=pki / "server.pem",
            tls_key_file=pki / "server.key",
            tls_client_ca_file=pki / "ca.pem" if mutual else None,
        )
    )
    try:
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        yield server.grpc_port, server.http_port, token
    finally:
        server.stop()


@pytest.fixture
def tls_server(tmp_path: Path, pki: Path) -> Iterator[tuple[int, int, str]]:
    yield from _start(tmp_path, pki, mutual=False)


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Path) -> Iterator[tuple[int, int, str]]:
    yield from _start(tmp_path, pki, mutual=True)


def test_grpc_and_https_with_tls(tls_server: tuple[int, int, str], pki: Path) -> None:
    grpc_port, http_port, token = tls_server
    with Client(f"127.0.0.1:{grpc_port}", token=token, tls_ca_file=pki / "ca.pem") as c:
        c.create_project("secure")
        assert [p.name for p in c.list_projects()] == ["secure"]
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.get(
        f"https://127.0.0.1:{http_port}/v1/projects",
        headers=headers,
        verify=ssl.create_default_context(cafile=str(pki / "ca.pem")),
    )
    assert r.status_code == 200 and r.json()["projects"][0]["name"] == "secure"
    # Plain text is refused on both ports.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
    with Client(f"127.0.0.1:{grpc_port}", token=token, timeout=5) as plain:
        with pytest.raises(ClientError) as err:
            plain.list_projects()
        assert err.value.status == "UNAVAILABLE"


def test_mutual_tls_requires_a_client_certificate(
    mtls_server: tuple[int, int, str], pki: Path
) -> None:
    grpc_port, http_port, token = mtls_server
    ca = pki / "ca.pem"
    with Client(
        f"127.0.0.1:{grpc_port}",
        token=token,
        tls_ca_file=ca,
        tls_cert_file=pki / "client.pem",
        tls_key_file=pki / "client.key",
    ) as c:
        assert c.list_projects() == []
    with Client(f"127.0.0.1:{grpc_port}", token=token, tls_ca_file=ca, timeout=5) as anonymous:
        with pytest.raises(ClientError) as err:
            anonymous.list_projects()
        assert err.value.status == "UNAVAILABLE"
    context = ssl.create_default_context(cafile=str(ca))
    with pytest.raises((httpx.HTTPError, ssl.SSLError)):
        httpx.get(f"https://127.0.0.1:{http_port}/healthz", verify=context, timeout=5)
    context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    assert httpx.get(f"https://127.0.0.1:{http_port}/healthz", verify=context).status_code == 200
