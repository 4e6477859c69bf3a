"""Connecting to a server: the gRPC channel (TLS when a CA is given) and the bearer token."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc

DEFAULT_SERVER = "127.0.0.1:50051"

_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # Keepalive suited to phones and laptops on flaky networks (the server allows it).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def open_channel(
    server: str,
    tls_ca_file: str | Path | None = None,
    tls_cert_file: str | Path | None = None,
    tls_key_file: str | Path | None = None,
) -> grpc.Channel:
    """A channel to ``server`` (host:port); TLS when a CA file is given (or
    ``MOBILETRAIN_TLS_CA``), with a client certificate for mutual TLS."""
    ca = tls_ca_file or os.environ.get("MOBILETRAIN_TLS_CA")
    if not ca:
        return grpc.insecure_channel(server, options=_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(tls_key_file).read_bytes() if tls_key_file else None,
        certificate_chain=Path(tls_cert_file).read_bytes() if tls_cert_file else None,
    )
    return grpc.secure_channel(server, credentials, options=_OPTIONS)


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, details: Any) -> Any:
        metadata = (*(details.metadata or ()), *self._metadata)
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        """Unary call."""
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        """Server-streaming call."""
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Client-streaming call."""
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        """Bidirectional call."""
        return continuation(self._details(details), requests)


def find_token(token: str | None = None, data_dir: str | Path | None = None) -> str | None:
    """The token to use: given, else ``MOBILETRAIN_TOKEN``, else the local admin-token file.

    The file is the one a server on this machine wrote on its first start
    (``$MOBILETRAIN_DATA_DIR`` or ``./mobiletrain-data``, file ``admin-token``).
    """
    if token:
        return token
    if os.environ.get("MOBILETRAIN_TOKEN"):
        return os.environ["MOBILETRAIN_TOKEN"]
    folder = Path(data_dir or os.environ.get("MOBILETRAIN_DATA_DIR") or "mobiletrain-data")
    path = folder / "admin-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
