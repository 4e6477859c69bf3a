"""``mobiletrain serve``: both servers in this process, and pairing a phone with ``--lan``."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from mobiletrain.cli.common import console, usage


def serve(
    data_dir: Annotated[Path, typer.Option(help="Data folder (SQLite + blobs)")] = Path(
        "mobiletrain-data"
    ),
    host: Annotated[
        str, typer.Option(help="Address to bind (with --lan: every interface, 0.0.0.0)")
    ] = "127.0.0.1",
    lan: Annotated[
        bool,
        typer.Option(
            "--lan",
            help="Reachable from phones: bind the LAN, serve TLS from a self-signed certificate "
            "made in DATA_DIR/tls/ and show a QR code with the address and its fingerprint",
        ),
    ] = False,
    grpc_port: Annotated[int, typer.Option(help="gRPC port")] = 50051,
    http_port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Concurrent training workers")] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept calls without a token (loud warning)")
    ] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve TLS")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="PEM CA: require client certificates (mutual TLS)")
    ] = None,
    database_url: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite)",
        ),
    ] = "",
    blob_url: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_BLOB_URL",
            help="Blob store: a folder or s3://bucket/prefix?endpoint_url=... (default: DATA_DIR)",
        ),
    ] = "",
    executor: Annotated[
        str, typer.Option(envvar="MOBILETRAIN_EXECUTOR", help="Where jobs train: local or ray")
    ] = "local",
    ray_address: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_RAY_ADDRESS",
            help="Ray cluster (host:6379 or ray://host:10001); empty starts a local Ray",
        ),
    ] = "",
) -> None:
    """Run the gRPC and HTTP servers until interrupted.

    Several replicas may share one PostgreSQL database and one S3 bucket (docs/deployment.md).
    """
    from mobiletrain.config import Settings
    from mobiletrain.memory import return_large_buffers
    from mobiletrain.server import start_server

    return_large_buffers()  # freed model-sized buffers go back to the system (issue 18)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pairing = None
    if lan:
        host, tls_cert, tls_key, pairing = _lan_setup(data_dir, host, tls_cert, tls_key)
    settings = Settings(
        data_dir=data_dir,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        max_workers=workers,
        auth=not no_auth,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_client_ca_file=tls_client_ca,
        database_url=database_url,
        blob_url=blob_url,
        executor=executor,
        ray_address=ray_address,
    )
    running = start_server(settings)
    console.print(
        f"mobiletrain serving: gRPC [bold]{host}:{running.grpc_port}[/bold], "
        f"HTTP [bold]{'https' if settings.tls else 'http'}://{host}:{running.http_port}[/bold] "
        "(OpenAPI at /openapi.json), "
        f"data in {data_dir}"
    )
    _print_start_notes(data_dir, host, running.http_port, running.grpc_port, settings, pairing)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    console.print("stopping…")
    running.stop()


def _lan_setup(
    data_dir: Path, host: str, tls_cert: Path | None, tls_key: Path | None
) -> tuple[str, Path | None, Path | None, Any]:
    """``serve --lan``: the address phones reach, and a pinned self-signed certificate."""
    from mobiletrain.cli.pairing import PairingInfo, cert_sha256, ensure_certificate, lan_address

    address = lan_address()
    if address is None:
        raise usage(
            "--lan: this machine has no network address besides 127.0.0.1; join the phone's "
            "Wi-Fi (or plug in Ethernet) and run mobiletrain serve --lan again"
        )
    bind = "0.0.0.0" if host == "127.0.0.1" else host  # loopback too, for the CLI on this machine
    if tls_cert is None or tls_key is None:
        tls_cert, tls_key, created = ensure_certificate(data_dir / "tls", [address, "127.0.0.1"])
        if created:
            console.print(f"created a self-signed TLS certificate in {tls_cert.parent}")
    fingerprint = cert_sha256(tls_cert.read_bytes())
    return bind, tls_cert, tls_key, PairingInfo(address, 0, 0, fingerprint)


def _print_start_notes(
    data_dir: Path, host: str, http_port: int, grpc_port: int, settings: Any, pairing: Any
) -> None:
    """Where the dashboard and token are, and how a phone connects (a QR code with --lan)."""
    from dataclasses import replace

    from mobiletrain.cli.pairing import is_loopback, qr_png, qr_terminal

    scheme = "https" if settings.tls else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(f"dashboard: {scheme}://{shown}:{http_port}/", highlight=False)
    if settings.auth:
        console.print(f"admin token (the dashboard asks for it): {data_dir / 'admin-token'}")
    if pairing is not None:
        info = replace(pairing, http_port=http_port, grpc_port=grpc_port)
        text = info.payload()
        png = data_dir / "pairing-qr.png"
        qr_png(text, png)
        console.print(qr_terminal(text), highlight=False, soft_wrap=True)
        console.print(
            f"scan this with the app (also in {png}): {text}", highlight=False, soft_wrap=True
        )
        console.print(
            f"the phone must be on the same network as {info.host}; allow TCP ports {http_port} "
            f"and {grpc_port} in this machine's firewall. The CLI here: "
            f"MOBILETRAIN_TLS_CA={data_dir / 'tls' / 'cert.pem'} mobiletrain projects list",
            highlight=False,
        )
    elif is_loopback(host):
        console.print(
            f"[yellow]warning:[/yellow] only this computer can reach {host}: a phone cannot "
            "connect, and a QR code from the dashboard points at this computer. "
            "To pair a phone, run: mobiletrain serve --lan"
        )
