"""Live delivery of job events to watchers.

Events are rows in the metadata store (written by worker processes, possibly on other machines),
so the store is the source of truth and a watcher can resume from any sequence number. The hub
polls one cheap number, the store's event watermark, and wakes every waiting watcher when it
moves; watchers then read their own job's new rows. One poll serves any number of watchers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import EventKind, JobEvent, JobState


class EventHub:
    """Wakes watchers when new events are stored."""

    def __init__(self, store: MetadataStore, poll_interval: float = 0.05) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self._cond = threading.Condition()
        self._watermark = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the polling thread (idempotent)."""
        if self._thread is None:
            self._watermark = self._store.event_watermark()
            self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling and release every waiting watcher."""
        self._stop.set()
        self.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def notify(self) -> None:
        """Wake watchers now (called after an event is appended in this process)."""
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                mark = self._store.event_watermark()
            except Exception:  # a transient database error must not kill the hub
                continue
            if mark != self._watermark:
                self._watermark = mark
                self.notify()

    def watch(
        self,
        job_id: str,
        after_seq: int,
        is_finished: Callable[[], bool],
        cancelled: threading.Event | None = None,
        heartbeat: float = 15.0,
    ) -> Iterator[JobEvent | None]:
        """Yield the job's events after ``after_seq`` up to its terminal state event.

        Yields ``None`` as a heartbeat when nothing happened for ``heartbeat`` seconds, so
        transports can detect dead connections. ``is_finished()`` tells whether the job reached
        a terminal state; it only guards against a final event that never comes.
        """
        seq = after_seq
        last_sent = time.monotonic()
        finished_since: float | None = None
        while not self._stop.is_set() and not (cancelled is not None and cancelled.is_set()):
            events = self._store.list_events(job_id, seq, 500)
            for ev in events:
                seq = ev.seq
                yield ev
                if ev.kind is EventKind.STATE and JobState(ev.data["state"]).is_terminal:
                    return
            if events:
                last_sent = time.monotonic()
                continue
            # The terminal state event normally ends the stream. A job that is finished but
            # whose final event never came (a writer died in between) ends after a grace time.
            if finished_since is None and is_finished():
                finished_since = time.monotonic()
            if finished_since is not None and time.monotonic() - finished_since > 3.0:
                return
            with self._cond:
                self._cond.wait(timeout=0.5 if finished_since else 1.0)
            if time.monotonic() - last_sent >= heartbeat:
                last_sent = time.monotonic()
                yield None
