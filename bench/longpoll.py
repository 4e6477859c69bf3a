"""Admin latency while 1,000 devices long-poll for federated work (issue 13, finding 4).

``python bench/longpoll.py [--devices 1000] [--calls 200] [--wait 20]``

A ``mobiletrain serve`` subprocess runs a federated session that never opens a round (it asks
for more devices than exist), so every device that asks for work is told to wait, as phones are
between rounds. Measured, against the same server:

1. idle: ``--calls`` sequential admin calls (REST ``GET /v1/projects`` and gRPC
   ``ListProjects``), p50/p99;
2. loaded: the same calls while ``--devices`` devices long-poll without pause (half REST
   ``GET .../federated/task?wait_seconds=``, half gRPC ``GetTask``), each re-polling at once when
   told to wait; plus ``/healthz`` and the server's peak RSS and CPU.

The ratio loaded p99 / idle p99 is the figure: before the long polls moved to the event loop, a
few dozen polls made every other call wait for a worker thread (~18 s).

Bounded: fixed counts and a ``--timeout`` for the whole run. Loopback only. Results go to
``bench/results/longpoll.json`` and are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import httpx  # noqa: E402

from bench.common import MobiletrainServer, git_commit, machine, percentiles  # noqa: E402
from mobiletrain._proto.mobiletrain.v1 import (  # noqa: E402
    federated_pb2,
    federated_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
)

RESULTS = HERE / "results" / "longpoll.json"
PROJECT = "longpoll"


class Server(MobiletrainServer):
    """The benchmark server: no per-token stream or per-address caps (one client process plays
    every device, all from 127.0.0.1 with one token)."""

    def __init__(self, data_dir: Path) -> None:
        import os

        os.environ["MOBILETRAIN_MAX_STREAMS_PER_TOKEN"] = "100000"
        os.environ["MOBILETRAIN_MAX_REQUESTS_PER_ADDRESS"] = "0"
        super().__init__(data_dir)


def _setup(server: Server, devices: int, timeout: float) -> list[str]:
    """A project, a session that keeps every device waiting, ``devices`` registrations."""
    with server.http(timeout=60) as client:
        client.post(
            "/v1/projects",
            json={
                "name": PROJECT,
                "labels": ["a", "b"],
                "input_spec": {"width": 8, "height": 8, "color_mode": "grayscale"},
            },
        ).raise_for_status()
        client.post(
            f"/v1/projects/{PROJECT}/federated/sessions",
            json={"min_devices": 100_000, "min_available_devices": 100_000},
        ).raise_for_status()
        ids = []
        for _ in range(devices):
            r = client.post(f"/v1/projects/{PROJECT}/federated/devices", json={"info": {}})
            ids.append(r.raise_for_status().json()["device_id"])
        # The session exports its on-device files first; devices wait meanwhile as well, but
        # measure the steady state: running, no round.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = client.get(f"/v1/projects/{PROJECT}/federated/sessions").json()
            state = sessions["sessions"][0]["state"]
            if state == "running":
                break
            if state in ("failed", "cancelled", "finished"):
                raise RuntimeError(f"the session ended: {sessions['sessions'][0]}")
            time.sleep(0.5)
    return ids


def _admin_latencies(server: Server, calls: int) -> dict[str, Any]:
    """p50/p99 of sequential admin calls over REST and gRPC (from a thread of their own)."""
    rest: list[float] = []
    grpc_times: list[float] = []
    metadata = (("authorization", f"Bearer {server.token}"),)
    with server.http(timeout=120) as client, grpc.insecure_channel(server.grpc_target) as channel:
        stub = projects_pb2_grpc.ProjectServiceStub(channel)
        for _ in range(calls):
            start = time.perf_counter()
            client.get("/v1/projects").raise_for_status()
            rest.append(time.perf_counter() - start)
            start = time.perf_counter()
            stub.ListProjects(projects_pb2.ListProjectsRequest(), metadata=metadata, timeout=120)
            grpc_times.append(time.perf_counter() - start)
        health = client.get("/healthz").json()
    return {
        "rest_ms": {k: v * 1000 for k, v in percentiles(rest).items()},
        "grpc_ms": {k: v * 1000 for k, v in percentiles(grpc_times).items()},
        "health": health,
    }


class Pollers:
    """``devices`` long polls in one asyncio loop, re-polling at once.

    Runs in a process of its own (:func:`_poll_process`), so its thousand coroutines do not
    slow down the process that times the admin calls.
    """

    def __init__(
        self,
        base_url: str,
        grpc_target: str,
        token: str,
        device_ids: list[str],
        wait: float,
        counters: Any,
        stop: Any,
    ) -> None:
        self.base_url = base_url
        self.grpc_target = grpc_target
        self.token = token
        self.ids = device_ids
        self.wait = wait
        self.counters = counters  # shared array: in flight, answers, errors
        self.stop = stop

    def _count(self, index: int, delta: int) -> None:
        with self.counters.get_lock():
            self.counters[index] += delta

    async def _rest(self, client: httpx.AsyncClient, device: str) -> None:
        url = f"/v1/projects/{PROJECT}/federated/task"
        while not self.stop.is_set():
            self._count(0, 1)
            try:
                r = await client.get(url, params={"device_id": device, "wait_seconds": self.wait})
                r.raise_for_status()
                self._count(1, 1)
            except Exception:  # counted, the run goes on
                self._count(2, 1)
                await asyncio.sleep(1)
            finally:
                self._count(0, -1)

    async def _grpc(self, stub: Any, device: str) -> None:
        metadata = (("authorization", f"Bearer {self.token}"),)
        request = federated_pb2.GetTaskRequest(
            project=PROJECT, device_id=device, wait_seconds=self.wait
        )
        while not self.stop.is_set():
            self._count(0, 1)
            try:
                async for _ in stub.GetTask(request, metadata=metadata, timeout=self.wait + 30):
                    pass
                self._count(1, 1)
            except Exception:
                self._count(2, 1)
                await asyncio.sleep(1)
            finally:
                self._count(0, -1)

    async def main(self) -> None:
        """Poll until ``stop`` is set."""
        half = len(self.ids) // 2
        limits = httpx.Limits(max_connections=half + 10, max_keepalive_connections=half + 10)
        async with (
            httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.wait + 30,
                limits=limits,
            ) as client,
            grpc.aio.insecure_channel(self.grpc_target) as channel,
        ):
            stub = federated_pb2_grpc.FederatedServiceStub(channel)
            tasks = [asyncio.create_task(self._rest(client, d)) for d in self.ids[:half]]
            tasks += [asyncio.create_task(self._grpc(stub, d)) for d in self.ids[half:]]
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _poll_process(*args: Any) -> None:
    asyncio.run(Pollers(*args).main())


def _sampling(server: Server, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.wait(0.05):
            server.sample_rss()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run(devices: int, calls: int, wait: float, timeout: float) -> dict[str, Any]:
    """Idle vs loaded admin latency against one server."""
    with tempfile.TemporaryDirectory(prefix="mt-longpoll-") as tmp:
        server = Server(Path(tmp) / "data")
        stop_sampling = threading.Event()
        try:
            ids = _setup(server, devices, timeout)
            _sampling(server, stop_sampling)
            idle = _admin_latencies(server, calls)
            rss_idle = server.ps.memory_info().rss
            counters = multiprocessing.Array("i", 3)
            stop = multiprocessing.Event()
            assert server.token is not None
            poller = multiprocessing.Process(
                target=_poll_process,
                args=(server.base_url, server.grpc_target, server.token, ids, wait, counters, stop),
                daemon=True,
            )
            poller.start()
            deadline = time.monotonic() + timeout
            while counters[0] < devices * 0.95 and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # every poll is now waiting on the server
            cpu_before = server.cpu_seconds()
            start = time.monotonic()
            loaded = _admin_latencies(server, calls)
            elapsed = time.monotonic() - start
            cpu = server.cpu_seconds() - cpu_before
            polling = counters[0]
            stop.set()
            poller.join(timeout=wait + 40)
            if poller.is_alive():
                poller.kill()
        finally:
            stop_sampling.set()
            server.stop()
    ratio = loaded["rest_ms"]["p99"] / idle["rest_ms"]["p99"]
    grpc_ratio = loaded["grpc_ms"]["p99"] / idle["grpc_ms"]["p99"]
    return {
        "devices": devices,
        "calls": calls,
        "wait_seconds": wait,
        "idle": idle,
        "loaded": loaded,
        "polls_in_flight_while_measuring": polling,
        "poll_answers": counters[1],
        "poll_errors": counters[2],
        "rest_p99_ratio": round(ratio, 2),
        "grpc_p99_ratio": round(grpc_ratio, 2),
        "server_rss_mb": {
            "idle": round(rss_idle / 2**20, 1),
            "peak": round(server.peak_rss / 2**20, 1),
        },
        "server_cpu_share_while_loaded": round(cpu / elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--wait", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    result = run(args.devices, args.calls, args.wait, args.timeout)
    result |= {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["poll_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
