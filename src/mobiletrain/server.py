"""Serving: starts both servers (gRPC and HTTP) over a container built from :class:`Settings`.

The container itself is :mod:`mobiletrain.container`; choosing implementations is
:mod:`mobiletrain.wiring`.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.wiring import build_container

log = logging.getLogger("mobiletrain.server")

ADMIN_TOKEN_FILE = "admin-token"


def ensure_admin_token(container: Container) -> str | None:
    """On a server's first start, create an admin token and keep it in DATA_DIR/admin-token.

    The file is readable by its owner only; the CLI on the same machine reads it when no token
    is given. Returns the new secret (to print once), or None when tokens already exist.
    """
    if container.store.count_tokens() > 0:
        return None
    secret = container.tokens.create_bootstrap_admin()
    path = container.settings.data_dir / ADMIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)
    return secret


def security_warnings(settings: Settings) -> list[str]:
    """Loud warnings for unsafe set-ups."""
    warnings = []
    if not settings.auth:
        warnings.append("authentication is OFF: anyone who can reach the ports controls the server")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.tls:
        warnings.append(
            f"binding {settings.host} without TLS: tokens and data cross the network in clear"
        )
    return warnings


@dataclass
class RunningServer:
    """Both servers of one process, with the ports they actually bound."""

    container: Container
    grpc_port: int
    http_port: int
    _grpc: object
    _uvicorn: object
    _http_thread: threading.Thread

    def stop(self) -> None:
        """Stop HTTP and gRPC, then the background parts."""
        self._uvicorn.should_exit = True  # type: ignore[attr-defined]
        self._http_thread.join(timeout=10)
        self._grpc.stop(grace=2).wait()  # type: ignore[attr-defined]
        self.container.close()


def start_server(settings: Settings) -> RunningServer:
    """Start gRPC and HTTP servers in this process; returns once both accept connections."""
    import socket
    import time

    import uvicorn

    from mobiletrain.api.grpc.server import build_grpc_server
    from mobiletrain.api.rest.app import create_app
    from mobiletrain.api.rest.limits import header_limited_protocol

    container = build_container(settings)
    for warning in security_warnings(settings):
        log.warning("WARNING: %s", warning)
    if settings.auth:
        secret = ensure_admin_token(container)
        if secret is not None:
            # Printed once: it is the only time the secret is shown.
            print(
                f"First start: admin token created and saved to "
                f"{settings.data_dir / ADMIN_TOKEN_FILE} (owner-only):\n  {secret}",
                flush=True,
            )
    container.start()
    grpc_server, grpc_port = build_grpc_server(container, f"{settings.host}:{settings.grpc_port}")
    grpc_server.start()

    # Bind the HTTP socket ourselves so port 0 works and the real port is known up front.
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.http_port))
    http_port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if settings.tls:
        tls = {
            "ssl_certfile": str(settings.tls_cert_file),
            "ssl_keyfile": str(settings.tls_key_file),
        }
        if settings.tls_client_ca_file is not None:
            tls |= {
                "ssl_ca_certs": str(settings.tls_client_ca_file),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
    config = uvicorn.Config(
        create_app(container),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        # Caps the request line + headers while they arrive (431, code 77).
        http=header_limited_protocol(settings.max_header_bytes),
        **tls,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("HTTP server did not start")
    log.info("gRPC on %s:%d, HTTP on %s:%d", settings.host, grpc_port, settings.host, http_port)
    from mobiletrain.api.rest.web import DIST_DIR

    if not (DIST_DIR / "index.html").exists():
        # Said at start-up, not only on "/": the APIs work, the dashboard does not.
        log.warning("the dashboard is not built: run `make web` (Node.js 20.19+) and restart")
    return RunningServer(container, grpc_port, http_port, grpc_server, server, thread)
