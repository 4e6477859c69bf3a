"""The Flower side of ``bench/federated.py``; runs in Flower's own virtualenv.

flwr 1.42 pins protobuf 6 and older FastAPI/Typer than mobiletrain, so it cannot share the
project's virtualenv: ``bench/federated.py`` builds ``.venv-flower`` from
``bench/requirements-flower.lock`` and runs this file there. Only flwr, numpy and psutil are
imported. Flower runs in its gRPC server mode (``start_server`` / ``start_client``), with
FedAvg.

    python bench/flower_baseline.py server --port P --devices N --rounds R --data D --out O
    python bench/flower_baseline.py clients --port P --devices N --data D [--train]

``D`` is an .npz written by ``bench/federated.py``: ``initial`` weights (``w0``, ``w1``, ...),
and for accuracy runs the device partitions (``x_<i>``, ``y_<i>``), the held-out set and the
training settings. Clients either return the weights unchanged (overhead) or train the same
64-64-10 MLP with the same mini-batch SGD as mobiletrain's train-step model (accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import flwr as fl
import numpy as np
import psutil


def _weights(data: Any) -> list[np.ndarray]:
    n = sum(1 for k in data.files if k.startswith("w"))
    return [data[f"w{i}"].astype(np.float32) for i in range(n)]


def forward(x: np.ndarray, ws: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Activations of every layer and the softmax output."""
    acts = [x]
    h = x
    layers = len(ws) // 2
    for i in range(layers):
        h = h @ ws[2 * i] + ws[2 * i + 1]
        if i < layers - 1:
            h = np.maximum(h, 0.0)
        acts.append(h)
    z = h - h.max(axis=1, keepdims=True)
    p = np.exp(z)
    return acts, p / p.sum(axis=1, keepdims=True)


def sgd_epoch(
    x: np.ndarray, y: np.ndarray, ws: list[np.ndarray], lr: float, batch: int, seed: int
) -> list[np.ndarray]:
    """One epoch of mini-batch SGD on the mean cross-entropy (what train-step computes)."""
    ws = [w.copy() for w in ws]
    order = np.random.default_rng(seed).permutation(len(x))
    layers = len(ws) // 2
    for start in range(0, len(x), batch):
        idx = order[start : start + batch]
        acts, p = forward(x[idx], ws)
        grad = p.copy()
        grad[np.arange(len(idx)), y[idx]] -= 1.0
        grad /= len(idx)
        for i in reversed(range(layers)):
            gw, gb = acts[i].T @ grad, grad.sum(axis=0)
            if i > 0:
                grad = (grad @ ws[2 * i].T) * (acts[i] > 0)
            ws[2 * i] -= lr * gw
            ws[2 * i + 1] -= lr * gb
    return ws


class _Timed(fl.server.strategy.FedAvg):
    """FedAvg that records when each round starts and evaluates the global model."""

    def __init__(self, held_out: tuple[np.ndarray, np.ndarray] | None, **kw: Any) -> None:
        super().__init__(**kw)
        self.starts: list[float] = []
        self.accuracy: list[float] = []
        self.held_out = held_out

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
        self.starts.append(time.perf_counter())
        return super().configure_fit(server_round, parameters, client_manager)

    def evaluate(self, server_round: int, parameters: Any) -> Any:
        if self.held_out is not None and server_round > 0:
            ws = fl.common.parameters_to_ndarrays(parameters)
            x, y = self.held_out
            self.accuracy.append(float(np.mean(forward(x, ws)[1].argmax(axis=1) == y)))
        return None


def serve(args: argparse.Namespace) -> None:
    data = np.load(args.data)
    held_out = (data["x_test"], data["y_test"]) if "x_test" in data.files else None
    strategy = _Timed(
        held_out,
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=args.devices,
        min_evaluate_clients=0,
        min_available_clients=args.devices,
        initial_parameters=fl.common.ndarrays_to_parameters(_weights(data)),
    )
    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], proc.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    fl.server.start_server(
        server_address=f"127.0.0.1:{args.port}",
        config=fl.server.ServerConfig(num_rounds=args.rounds),
        strategy=strategy,
    )
    stop.set()
    starts = strategy.starts
    end = time.perf_counter()
    cycles = [b - a for a, b in zip(starts, [*starts[1:], end], strict=True)]
    with open(args.out, "w") as fh:
        json.dump({"round_seconds": cycles, "peak_rss": peak[0], "accuracy": strategy.accuracy}, fh)


class _Unchanged(fl.client.NumPyClient):
    def fit(self, parameters: Any, config: Any) -> Any:
        return parameters, 1, {}


class _Trainer(fl.client.NumPyClient):
    def __init__(self, x: np.ndarray, y: np.ndarray, lr: float, batch: int, seed: int) -> None:
        self.x, self.y, self.lr, self.batch, self.seed = x, y, lr, batch, seed
        self.round = 0

    def fit(self, parameters: Any, config: Any) -> Any:
        self.round += 1
        ws = sgd_epoch(
            self.x, self.y, list(parameters), self.lr, self.batch, self.seed + self.round
        )
        return ws, len(self.x), {}


def clients(args: argparse.Namespace) -> None:
    data = np.load(args.data)
    threads = []
    for i in range(args.devices):
        if args.train:
            client: fl.client.NumPyClient = _Trainer(
                data[f"x_{i}"],
                data[f"y_{i}"],
                float(data["lr"]),
                int(data["batch"]),
                1000 * i,
            )
        else:
            client = _Unchanged()
        t = threading.Thread(
            target=fl.client.start_client,
            kwargs={
                "server_address": f"127.0.0.1:{args.port}",
                "client": client.to_client(),
                "insecure": True,
            },
            daemon=True,
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["server", "clients"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="")
    parser.add_argument("--train", action="store_true")
    args = parser.parse_args(argv)
    (serve if args.mode == "server" else clients)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
