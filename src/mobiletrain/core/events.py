"""Live delivery of job events to watchers.

Events are rows in the metadata store (written by worker processes, possibly on other machines),
so the store is the source of truth and a watcher can resume from any sequence number. The hub
polls one cheap number, the store's event watermark, and wakes every waiting watcher when it
moves; watchers then read their own job's new rows. One poll serves any number of watchers.

With an :class:`EventSignal` (PostgreSQL ``LISTEN/NOTIFY``, or a local datagram from the
writing process when the store is a SQLite file, see ``store/event_signals.py``) the writer's
commit wakes the hub at once; the watermark poll then only covers a lost signal and runs once
per ``fallback_interval``. Without one, the hub polls every ``poll_interval``.

Watchers of the same job share their reads: the hub keeps the recent tail of each watched job's
events, and when new events may exist (the watermark moved, or this process appended) one
watcher reads the store for all of them while the others wait for it and then serve themselves
from the tail. A thousand phones watching one job cost one query per change, not a thousand.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import EventKind, JobEvent, JobState

_TAIL_EVENTS = 2000
"""Events of one job kept in memory for its watchers (older ones are read from the store)."""

FINAL_EVENT_GRACE_SECONDS = 3.0
"""How long after a job ended its final state event may still be missing (a late writer)."""


def is_final_event(event: JobEvent) -> bool:
    """True for the state event that ends a job's stream (succeeded, failed, cancelled)."""
    if event.kind is not EventKind.STATE:
        return False
    try:
        return JobState(str(event.data.get("state"))).is_terminal
    except ValueError:
        return False


@dataclass
class _Tail:
    """The recent events of one watched job, shared by its watchers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: list[JobEvent] = field(default_factory=list)
    base_seq: int = 0  # events with seq > base_seq are all in ``events``
    checked: tuple[int, int] = (-1, -1)  # (watermark, generation) when last read
    watchers: int = 0
    # The answer of the last is_finished() for this job and when it was asked (monotonic):
    # shared by the job's watchers, so a thousand of them ask the store once a second, not
    # a thousand times.
    finished: bool = False
    finished_asked: float = float("-inf")


@dataclass
class _Watcher:
    """Where one watcher is; the same rules for the thread and the asyncio watch loops."""

    seq: int
    heartbeat: float
    last_sent: float = field(default_factory=time.monotonic)
    finished_since: float | None = None
    next_finish_check: float = 0.0  # is_finished() reads the store: at most once a second

    def sent(self, event: JobEvent) -> bool:
        """Note a delivered event; True when it is the terminal state event."""
        self.seq = event.seq
        self.last_sent = time.monotonic()
        return event.kind is EventKind.STATE and JobState(event.data["state"]).is_terminal

    def finish_check_due(self) -> bool:
        """Whether to ask if the job has finished (nothing new came)."""
        if self.finished_since is None and time.monotonic() >= self.next_finish_check:
            self.next_finish_check = time.monotonic() + 1.0
            return True
        return False

    def gave_up(self) -> bool:
        """The terminal state event normally ends the stream; a job that is finished but whose
        final event never came (a writer died in between) ends after a grace time."""
        return (
            self.finished_since is not None
            and time.monotonic() - self.finished_since > FINAL_EVENT_GRACE_SECONDS
        )

    def wait_seconds(self) -> float:
        """How long to wait for a wake-up before looking again."""
        return 0.5 if self.finished_since else 1.0

    def heartbeat_due(self) -> bool:
        """True (and reset) when nothing was sent for ``heartbeat`` seconds."""
        if time.monotonic() - self.last_sent >= self.heartbeat:
            self.last_sent = time.monotonic()
            return True
        return False


class EventSignal(ABC):
    """Tells the hub that an event may have been stored by another process (push, no data:
    the store is read afterwards). Implementations live in ``store/event_signals.py``."""

    @abstractmethod
    def start(self, wake: Callable[[], None]) -> None:
        """Begin delivering; call ``wake()`` (from any thread) when events may be new."""

    @abstractmethod
    def stop(self) -> None:
        """Stop delivering."""


class EventHub:
    """Wakes watchers when new events are stored."""

    def __init__(
        self,
        store: MetadataStore,
        poll_interval: float = 0.05,
        signal: EventSignal | None = None,
        fallback_interval: float = 0.5,
    ) -> None:
        self._store = store
        self._signal = signal
        # With a push signal the poll is only the safety net for a lost signal.
        self._poll_interval = fallback_interval if signal is not None else poll_interval
        self._cond = threading.Condition()
        self._watermark = 0
        self._generation = 0  # bumped by notify(): events appended in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tails: dict[str, _Tail] = {}
        self._tails_lock = threading.Lock()
        # Async watchers' wake-up events, per event loop: notify() sets them on their loop.
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Event]] = {}
        self._waiters_lock = threading.Lock()

    def start(self) -> None:
        """Start the polling thread (idempotent)."""
        if self._thread is None:
            self._watermark = self._store.event_watermark()
            self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
            self._thread.start()
            if self._signal is not None:
                # The signal's thread wakes the watchers itself: no hop through the hub's
                # thread (each hop is a scheduling delay on a busy machine).
                self._signal.start(self._pushed)

    def _pushed(self) -> None:
        # Some process committed an event. Every watched job's tail becomes stale and is read
        # once more (a watermark compare could miss an event whose id is below one already
        # committed: PostgreSQL ids are not in commit order).
        if not self._stop.is_set():
            self.notify()

    @property
    def pushed(self) -> bool:
        """True when other processes' events arrive by push (else by polling)."""
        return self._signal is not None

    def stop(self) -> None:
        """Stop polling and release every waiting watcher."""
        self._stop.set()
        if self._signal is not None and self._thread is not None:
            self._signal.stop()
        self.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def notify(self) -> None:
        """Wake watchers now (called after an event is appended in this process)."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        with self._waiters_lock:
            waiting = [(loop, list(events)) for loop, events in self._waiters.items()]
        for loop, events in waiting:
            # One wake-up per loop, not per watcher. A closed loop's watchers are gone.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_all, events)

    def _cached_events_after(self, job_id: str, after_seq: int) -> list[JobEvent] | None:
        """The events after ``after_seq`` if the shared tail is current (no store read, no
        waiting), else None. Lets async watchers skip a thread hop when nothing is new."""
        if self._thread is None:
            return None
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None or after_seq < tail.base_seq or not tail.lock.acquire(blocking=False):
            return None
        try:
            if tail.checked != (self._watermark, self._generation):
                return None
            start = bisect.bisect_right(tail.events, after_seq, key=lambda e: e.seq)
            return tail.events[start : start + 500]
        finally:
            tail.lock.release()

    def _events_after(self, job_id: str, after_seq: int) -> list[JobEvent]:
        """Up to 500 events after ``after_seq``, read once per change for all watchers."""
        if self._thread is None:  # not polling: no watermark to trust, read directly
            return self._store.list_events(job_id, after_seq, 500)
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None or after_seq < tail.base_seq:
            return self._store.list_events(job_id, after_seq, 500)  # resuming from far back
        with tail.lock:
            mark = (self._watermark, self._generation)  # before the read: no change is lost
            if tail.checked != mark:
                last = tail.events[-1].seq if tail.events else tail.base_seq
                fresh = self._store.list_events(job_id, last, 500)
                tail.events.extend(fresh)
                if len(fresh) < 500:
                    tail.checked = mark  # else more are waiting: read again next time
                if len(tail.events) > _TAIL_EVENTS:
                    drop = len(tail.events) - _TAIL_EVENTS
                    tail.base_seq = tail.events[drop - 1].seq
                    del tail.events[:drop]
            if after_seq < tail.base_seq:
                return self._store.list_events(job_id, after_seq, 500)
            start = bisect.bisect_right(tail.events, after_seq, key=lambda e: e.seq)
            return tail.events[start : start + 500]

    def _join(self, job_id: str, after_seq: int) -> None:
        with self._tails_lock:
            tail = self._tails.get(job_id)
            if tail is None:
                tail = self._tails[job_id] = _Tail(base_seq=after_seq)
            tail.watchers += 1

    def _leave(self, job_id: str) -> None:
        with self._tails_lock:
            tail = self._tails.get(job_id)
            if tail is not None:
                tail.watchers -= 1
                if tail.watchers <= 0:
                    del self._tails[job_id]

    def _finished_cached(self, job_id: str) -> bool | None:
        """The job's shared is_finished() answer if under a second old, else None."""
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None or time.monotonic() - tail.finished_asked >= 1.0:
            return None
        return tail.finished

    def _is_finished(self, job_id: str, is_finished: Callable[[], bool]) -> bool:
        """``is_finished()`` asked at most once a second per job for all its watchers."""
        cached = self._finished_cached(job_id)
        if cached is not None:
            return cached
        asked = time.monotonic()
        finished = is_finished()
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is not None:
            tail.finished, tail.finished_asked = finished, asked
        return finished

    def _run(self) -> None:
        polls = 0
        while not self._stop.wait(self._poll_interval):
            try:
                mark = self._store.event_watermark()
            except Exception:  # a transient database error must not kill the hub
                continue
            polls += 1
            # With a signal, also wake every few fallback polls: covers a lost signal for an
            # event whose id is below the watermark already seen (see _pushed).
            if mark != self._watermark or (self._signal is not None and polls % 4 == 0):
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
        self._join(job_id, after_seq)
        try:
            yield from self._watch(job_id, after_seq, is_finished, cancelled, heartbeat)
        finally:
            self._leave(job_id)

    def _watch(
        self,
        job_id: str,
        after_seq: int,
        is_finished: Callable[[], bool],
        cancelled: threading.Event | None,
        heartbeat: float,
    ) -> Iterator[JobEvent | None]:
        w = _Watcher(after_seq, heartbeat)
        while not self._stop.is_set() and not (cancelled is not None and cancelled.is_set()):
            events = self._events_after(job_id, w.seq)
            for ev in events:
                terminal = w.sent(ev)
                yield ev
                if terminal:
                    return
            if events:
                continue
            if w.finish_check_due() and self._is_finished(job_id, is_finished):
                w.finished_since = time.monotonic()
            if w.gave_up():
                return
            with self._cond:
                self._cond.wait(timeout=w.wait_seconds())
            if w.heartbeat_due():
                yield None

    async def watch_async(
        self,
        job_id: str,
        after_seq: int,
        is_finished: Callable[[], bool],
        stop: asyncio.Event | None = None,
        heartbeat: float = 15.0,
    ) -> AsyncIterator[JobEvent | None]:
        """:meth:`watch` for asyncio code: waiting for events holds no thread.

        Store reads run in the default executor, and only when the shared tail may be stale;
        a watcher that is woken for nothing new costs no thread at all. ``stop`` ends the watch.
        """
        loop = asyncio.get_running_loop()
        waiter = asyncio.Event()
        with self._waiters_lock:
            self._waiters.setdefault(loop, set()).add(waiter)
        relay = asyncio.ensure_future(_relay(stop, waiter)) if stop is not None else None
        self._join(job_id, after_seq)
        try:
            w = _Watcher(after_seq, heartbeat)
            while not self._stop.is_set() and not (stop is not None and stop.is_set()):
                waiter.clear()  # before reading: a notify() during the read is not lost
                events = self._cached_events_after(job_id, w.seq)
                if events is None:
                    events = await asyncio.to_thread(self._events_after, job_id, w.seq)
                for ev in events:
                    terminal = w.sent(ev)
                    yield ev
                    if terminal:
                        return
                if events:
                    continue
                if w.finish_check_due():
                    finished = self._finished_cached(job_id)  # no thread hop when fresh
                    if finished is None:
                        finished = await asyncio.to_thread(self._is_finished, job_id, is_finished)
                    if finished:
                        w.finished_since = time.monotonic()
                if w.gave_up():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), timeout=w.wait_seconds())
                if w.heartbeat_due():
                    yield None
        finally:
            if relay is not None:
                relay.cancel()
            self._leave(job_id)
            with self._waiters_lock:
                waiters = self._waiters.get(loop)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[loop]


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()


async def _relay(stop: asyncio.Event, waiter: asyncio.Event) -> None:
    """Wake the watcher when ``stop`` is set."""
    await stop.wait()
    waiter.set()
