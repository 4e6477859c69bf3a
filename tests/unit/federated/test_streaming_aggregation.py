"""Aggregating updates as they stream in gives the aggregate of the stored updates (issue 18).

The coordinator takes an update handed over by a device call on its own replica from memory
(the delta is made in the call's own buffer), reads one that reached another replica from the
blob store, and rebuilds an open round from the stored updates after a takeover; robust
strategies spill their deltas to a file and combine them a block of coordinates at a time.
Every path must give what the previous implementation gave (kept here as the reference):
clip each float32 delta, FedAvg as a float64 running sum of float32 ``delta * weight``,
median and trimmed mean over the stacked deltas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_coordinator_failover import LEASE_TTL_S, Replica, replica, wait_for

from mobiletrain.federated import strategy as strategy_module
from mobiletrain.federated.config import FederatedConfig, StrategyName
from mobiletrain.federated.coordinator import clipped_delta
from mobiletrain.federated.fedavg import RunningMean
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.federated.median import MedianAggregator
from mobiletrain.federated.records import SessionState
from mobiletrain.federated.trimmed_mean import TrimmedMeanAggregator

SHAPES = [(64, 16), (16,), (16, 3), (3,)]
CLIP = 2.0


# -- the reference: the aggregation as it was before streaming ----------------------------------
def reference_clip(delta: Sequence[np.ndarray], clip_norm: float) -> list[np.ndarray]:
    if clip_norm <= 0:
        return list(delta)
    norm = float(np.sqrt(sum(float(np.sum(np.square(t, dtype=np.float64))) for t in delta)))
    if norm <= clip_norm:
        return list(delta)
    factor = np.float32(clip_norm / norm)
    return [np.asarray(d * factor, dtype=np.float32) for d in delta]


def reference_fedavg(deltas: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> list:
    sums = [np.zeros(d.shape, dtype=np.float64) for d in deltas[0]]
    for delta, weight in zip(deltas, weights, strict=True):
        for acc, d in zip(sums, delta, strict=True):
            acc += np.multiply(d, np.float32(weight), dtype=np.float32)
    return [(acc / sum(weights)).astype(np.float32) for acc in sums]


def reference_median(deltas: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    return [
        np.median(np.stack([d[i] for d in deltas]), axis=0).astype(np.float32)
        for i in range(len(deltas[0]))
    ]


def reference_trimmed(deltas: Sequence[Sequence[np.ndarray]], fraction: float) -> list:
    n = len(deltas)
    k = min(math.floor(fraction * n), (n - 1) // 2)
    out = []
    for i in range(len(deltas[0])):
        ordered = np.sort(np.stack([d[i] for d in deltas]), axis=0)
        out.append(ordered[k : n - k].mean(axis=0).astype(np.float32))
    return out


def updates(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Global weights and ``n`` device weights, about half of them far enough to be clipped."""
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    devices = [
        [
            w + rng.normal(scale=0.02 if i % 2 else 0.2, size=w.shape).astype(np.float32)
            for w in start
        ]
        for i in range(n)
    ]
    return start, devices


def test_fedavg_from_consumed_buffers_equals_the_reference() -> None:
    start, devices = updates(9)
    weights = [float(10 * (i + 1)) for i in range(9)]
    expected = reference_fedavg(
        [reference_clip([t - w for t, w in zip(d, start, strict=True)], CLIP) for d in devices],
        weights,
    )
    aggregator = RunningMean()
    clipped = 0
    for device, weight in zip(devices, weights, strict=True):
        own = [t.copy() for t in device]  # the device call's buffer, overwritten
        delta, _, was_clipped = clipped_delta(own, start, CLIP, writable=True)
        assert all(d is o for d, o in zip(delta, own, strict=True))  # no new arrays
        clipped += was_clipped
        aggregator.add(delta, weight, consume=True)
    assert 0 < clipped < 9
    for got, want in zip(aggregator.result(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["median", "trimmed"])
def test_spilled_robust_strategies_equal_the_in_memory_ones(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(strategy_module, "SPILL_BLOCK_BYTES", 4096)  # many blocks per tensor
    start, devices = updates(7, seed=1)
    deltas = [clipped_delta(d, start, CLIP, writable=False)[0] for d in devices]
    aggregator = MedianAggregator() if name == "median" else TrimmedMeanAggregator(0.2)
    for delta in deltas:
        aggregator.add([d.copy() for d in delta], 1.0, consume=True)
    got = aggregator.result()
    want = reference_median(deltas) if name == "median" else reference_trimmed(deltas, 0.2)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_array_equal(g, w)
    aggregator.close()
    aggregator.close()  # idempotent


# -- through the service: handed over, read from the store, rebuilt after a takeover -------------
def chunks(data: bytes, size: int = 1000) -> list[bytes]:
    """An update as a streaming transport hands it over (a bytearray is made of it)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("strategy", [StrategyName.FEDAVG, StrategyName.MEDIAN])
@pytest.mark.parametrize("path", ["handed-over", "from-store", "takeover"])
def test_the_aggregate_is_the_same_whichever_way_updates_reach_the_coordinator(
    tmp_path: Path, strategy: StrategyName, path: str
) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    a = replica("replica-a", url, tmp_path / "blobs")
    b = replica("replica-b", url, tmp_path / "blobs")
    try:
        from test_service import SPEC

        a.service.projects.create("digits", labels=["a", "b", "c"], input_spec=SPEC)
        n = 4
        config = FederatedConfig(
            rounds=1,
            min_devices=n,
            min_available_devices=n,
            hidden=(16,),
            clip_norm=CLIP,
            strategy=strategy.value,
            seed=5,
        )
        sid = a.service.start_session("digits", config).id  # replica A coordinates it
        wait_for(lambda: a.service.get_session(sid).state is SessionState.RUNNING)
        devices = [a.service.register("digits", {})[1] for _ in range(n)]
        wait_for(lambda: a.service.get_session(sid).current_round == 1)
        session = a.service.get_session(sid)
        head = HeadSpec.from_dict(session.bundle["head"])
        start = weights_from_bytes(a.service.blobs.get(session.weights_sha256), head)
        rng = np.random.default_rng(7)
        sent = [
            [
                w + rng.normal(scale=0.3 if i % 2 else 0.01, size=w.shape).astype(np.float32)
                for w in start
            ]
            for i in range(n)
        ]
        counts = [10, 20, 30, 40]  # no share above max_weight_share (0.5)

        def push(target: Replica, i: int) -> None:
            reply = target.service.push_update(
                "digits", devices[i], sid, 1, chunks(weights_to_bytes(sent[i])), counts[i]
            )
            assert reply.accepted, reply

        read_back: list[str] = []  # updates a coordinator read from the blob store
        for r in (a, b):
            read = r.service.coordinator._delta

            def counting(live, row, read=read):  # type: ignore[no-untyped-def]
                read_back.append(row.device_id)
                return read(live, row)

            r.service.coordinator._delta = counting  # type: ignore[method-assign]
        if path == "handed-over":
            for i in range(n):
                push(a, i)
        elif path == "from-store":
            for i in range(n):
                push(b, i)  # B does not coordinate: A reads them from the blob store
        else:
            push(a, 0)
            push(a, 1)
            a.service.stop(hand_over=False)  # crashed: B takes over once the lease expires
            wait_for(lambda: b.service.sessions.get(sid) is not None, LEASE_TTL_S + 10)
            push(b, 2)
            push(b, 3)
        coordinator = b if path == "takeover" else a
        wait_for(lambda: coordinator.service.get_session(sid).state is SessionState.FINISHED)
        final = weights_from_bytes(
            coordinator.service.blobs.get(coordinator.service.get_session(sid).weights_sha256),
            head,
        )
        deltas = [
            reference_clip([t - w for t, w in zip(d, start, strict=True)], CLIP) for d in sent
        ]
        if strategy is StrategyName.FEDAVG:
            aggregate = reference_fedavg(deltas, [float(c) for c in counts])
        else:
            aggregate = reference_median(deltas)
        for got, w, d in zip(final, start, aggregate, strict=True):
            np.testing.assert_allclose(got, (w + d).astype(np.float32), rtol=1e-6, atol=1e-6)
        # Handed over: none read back; from the store: all; after the takeover: the two A
        # had taken in (B rebuilds the round from the stored updates), the rest handed over.
        assert len(read_back) == {"handed-over": 0, "from-store": n, "takeover": 2}[path]
        rnd = coordinator.service.rounds(sid)[0]
        assert len(rnd.result["accepted"]) == n and rnd.result["clipped"] >= 1
    finally:
        b.close()
        a.close()


def test_an_update_is_received_into_the_reused_buffer_only_when_its_size_is_right() -> None:
    from mobiletrain.federated.inputs import join_update

    buffer = bytearray(10)
    assert join_update([b"01234", b"56789"], 10, buffer) is buffer
    assert bytes(buffer) == b"0123456789"
    short = join_update([b"abc"], 10, buffer)
    assert short == b"abc" and short is not buffer and bytes(buffer) == b"abc3456789"
    long = join_update([b"abcdefghij", b"k"], 10, buffer)
    assert long == b"abcdefghijk" and len(buffer) == 10
    assert join_update([b"x" * 10], 10, bytearray(3)) == b"x" * 10  # wrong size: a new one
