"""Events written by another process reach a watcher by push, on SQLite and PostgreSQL.

The hub's fallback poll is set to an hour and a watcher's own timeouts re-read the store only
when the hub saw a change, so the events can only arrive through the signal: PostgreSQL's
NOTIFY trigger, or the datagram the writing process sends after its commit on SQLite. Without
the push the watch would stall and the test fail at its deadline.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from fleet_support import new_job

from mobiletrain.core.events import EventHub
from mobiletrain.core.types import EventKind, JobEvent
from mobiletrain.store.event_signals import open_event_signal
from mobiletrain.store.sql import SqlMetadataStore

WRITER = """
import sys, time
from mobiletrain.core.types import EventKind, JobState
from mobiletrain.store.sql import SqlMetadataStore

url, job_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlMetadataStore(url, run_migrations=False)  # as a worker opens it: it publishes
time.sleep(0.5)  # the watcher is waiting by now
for i in range(n):
    store.append_event(job_id, EventKind.PROGRESS, {"i": i})
    time.sleep(0.02)
store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})
"""


def _watch_all(hub: EventHub, job_id: str, deadline_s: float) -> list[JobEvent]:
    got: list[JobEvent] = []
    cancelled = threading.Event()
    timer = threading.Timer(deadline_s, cancelled.set)
    timer.start()
    try:
        for ev in hub.watch(job_id, 0, is_finished=lambda: False, cancelled=cancelled):
            if ev is not None:
                got.append(ev)
    finally:
        timer.cancel()
    return got


def test_events_from_another_process_arrive_by_push(database_url: str) -> None:
    store = SqlMetadataStore(database_url)
    job = new_job(store)
    signal = open_event_signal(database_url)
    assert signal is not None
    hub = EventHub(store, signal=signal, fallback_interval=3600)
    hub.start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, database_url, job.id, "30"])
    try:
        got = _watch_all(hub, job.id, deadline_s=20)
        assert writer.wait(timeout=30) == 0
        assert [e.seq for e in got] == list(range(1, 32)), "events missed without the push"
        assert got[-1].kind is EventKind.STATE
    finally:
        writer.kill()
        hub.stop()
        store.close()


def test_a_listener_killed_without_cleanup_is_dropped_by_the_writer(tmp_path: Path) -> None:
    """SQLite: a registered listener whose process died (SIGKILL: no unregistering) is removed
    by the next writer; live listeners are still served."""
    url = f"sqlite:///{tmp_path / 'mobiletrain.db'}"
    store = SqlMetadataStore(url)
    job = new_job(store)
    signal_dir = tmp_path / "mobiletrain.db-signals"
    signal_dir.mkdir()
    (signal_dir / ("0" * 32)).touch()  # nobody binds this name: a killed listener's leftover
    hub = EventHub(store, signal=open_event_signal(url), fallback_interval=3600)
    hub.start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, job.id, "3"])
    try:
        got = _watch_all(hub, job.id, deadline_s=20)
        assert writer.wait(timeout=30) == 0
        assert [e.seq for e in got] == [1, 2, 3, 4]
        assert not (signal_dir / ("0" * 32)).exists()
        assert len(list(signal_dir.iterdir())) == 1  # the hub's own registration
    finally:
        writer.kill()
        hub.stop()
        store.close()
    assert list(signal_dir.iterdir()) == []  # unregistered on stop


def test_watchers_of_one_job_share_the_finished_check(tmp_path: Path) -> None:
    """A job with no new events: each watcher asks "finished?" once a second, but the hub
    asks the store at most once a second for all of them (not once per watcher)."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'mobiletrain.db'}"
    store = SqlMetadataStore(url)
    job = new_job(store)
    hub = EventHub(store)
    hub.start()
    calls: list[float] = []

    def is_finished() -> bool:
        calls.append(time.monotonic())
        return False

    async def main() -> None:
        stop = asyncio.Event()

        async def watcher() -> None:
            async for _ in hub.watch_async(job.id, 0, is_finished, stop=stop):
                pass

        tasks = [asyncio.ensure_future(watcher()) for _ in range(50)]
        await asyncio.sleep(3.2)
        stop.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        hub.stop()
        store.close()
    assert 1 <= len(calls) <= 5, len(calls)  # 50 watchers x 3 s would be ~150 without sharing
