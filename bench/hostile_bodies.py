"""Server memory under hostile request bodies (issue 13, finding 1).

``python bench/hostile_bodies.py [--clients 8] [--mb 300]``

A ``mobiletrain serve`` subprocess gets ``--clients`` concurrent requests of ``--mb`` MB each,
per scenario, over raw sockets (a client never holds more than one 1 MiB chunk, and stops
sending once the server has answered). Scenarios, without and with a valid token:

* JSON to ``POST /v1/projects/{p}/samples:base64`` with ``Content-Length`` declared;
* ``text/plain`` to ``POST /v1/projects`` sent chunked (no length up front);
* with a token also: chunked JSON to the base64 route (read up to its cap, then 413), and a
  multipart upload of one huge file (accepted up to the multipart cap, spooled to disk by the
  form parser, the file refused on its own).

Reported per scenario: the answers, bytes the clients got to send, seconds, and the server's
peak RSS (sampled every 20 ms) against its RSS before the scenario. Bounded and loopback only.
Results go to ``bench/results/hostile_bodies.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MobiletrainServer, git_commit, machine  # noqa: E402

RESULTS = HERE / "results" / "hostile_bodies.json"
MB = 1024 * 1024
PROJECT = "hostile"
BOUNDARY = "mtbenchboundary"


def _send(
    port: int, head: bytes, size: int, chunked: bool, prefix: bytes = b"", suffix: bytes = b""
) -> tuple[int, int, float]:
    """(status, bytes sent, seconds) of one request whose body is ``size`` bytes of 'x'."""
    start = time.monotonic()
    sent = 0
    block = b"x" * MB
    status = 0
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(head)
            pieces = [prefix] if prefix else []
            while sent < size:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered (or closed): stop sending
                if pieces:
                    piece = pieces.pop()
                else:
                    piece = block[: min(MB, size - sent)]
                    sent += len(piece)
                    if sent >= size and suffix:
                        piece += suffix
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked and sent >= size:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        try:
            sock.settimeout(120)
            answer = sock.recv(4096)
            if answer.startswith(b"HTTP/1.1 "):
                status = int(answer[9:12])
        except (ConnectionResetError, TimeoutError):
            pass
    return status, sent, time.monotonic() - start


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _scenario(
    server: MobiletrainServer,
    name: str,
    clients: int,
    size: int,
    method: str,
    path: str,
    headers: dict[str, str],
    chunked: bool,
    prefix: bytes = b"",
    suffix: bytes = b"",
) -> dict[str, Any]:
    if chunked:
        headers = headers | {"Transfer-Encoding": "chunked"}
    else:
        headers = headers | {"Content-Length": str(size + len(prefix) + len(suffix))}
    head = _head(method, path, headers)
    time.sleep(1.0)  # let the previous scenario's memory settle
    base = server.ps.memory_info().rss
    server.peak_rss = base
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            server.sample_rss()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(
            pool.map(
                lambda _: _send(server.http_port, head, size, chunked, prefix, suffix),
                range(clients),
            )
        )
    elapsed = time.monotonic() - start
    stop.set()
    sampler.join()
    statuses = sorted({r[0] for r in results})
    return {
        "scenario": name,
        "statuses": statuses,
        "sent_mb_per_client_max": round(max(r[1] for r in results) / MB, 1),
        "seconds": round(elapsed, 2),
        "rss_before_mb": round(base / MB, 1),
        "rss_peak_mb": round(server.peak_rss / MB, 1),
        "rss_growth_mb": round((server.peak_rss - base) / MB, 1),
    }


def run(clients: int, mb: int) -> list[dict[str, Any]]:
    """Every scenario against one server."""
    size = mb * MB
    with tempfile.TemporaryDirectory(prefix="mt-hostile-") as tmp:
        server = MobiletrainServer(Path(tmp) / "data")
        try:
            with server.http(timeout=60) as client:
                client.post("/v1/projects", json={"name": PROJECT}).raise_for_status()
            token = server.headers()
            json_h = {"Content-Type": "application/json"}
            text_h = {"Content-Type": "text/plain"}
            base64 = f"/v1/projects/{PROJECT}/samples:base64"
            part = (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="label"\r\n\r\ncat\r\n'
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
                'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode()
            end = f"\r\n--{BOUNDARY}--\r\n".encode()
            multipart_h = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            scenarios = [
                ("no token, JSON, Content-Length", "POST", base64, json_h, False, b"", b""),
                ("no token, text/plain, chunked", "POST", "/v1/projects", text_h, True, b"", b""),
                ("token, JSON, Content-Length", "POST", base64, token | json_h, False, b"", b""),
                ("token, JSON, chunked", "POST", base64, token | json_h, True, b"", b""),
                (
                    "token, text/plain, chunked",
                    "POST",
                    "/v1/projects",
                    token | text_h,
                    True,
                    b"",
                    b"",
                ),
                (
                    "token, multipart file, Content-Length",
                    "POST",
                    f"/v1/projects/{PROJECT}/samples",
                    token | multipart_h,
                    False,
                    part,
                    end,
                ),
            ]
            return [
                _scenario(server, name, clients, size, method, path, headers, chunked, pre, suf)
                for name, method, path, headers, chunked, pre, suf in scenarios
            ]
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mb", type=int, default=300)
    args = parser.parse_args(argv)
    result = {
        "clients": args.clients,
        "mb_per_body": args.mb,
        "scenarios": run(args.clients, args.mb),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
