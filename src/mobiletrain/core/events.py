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

Asynchronous watchers (:meth:`EventHub.watch_async`, gRPC ``WatchJob``) go further: per event
loop and job a :class:`_Feed` makes the one store read when events may be new and wakes only
that job's watchers, and only when its tail grew; waking costs a future each, no thread hop and
no task per wait. A watcher serves itself from the shared tail; what is older than the tail it
reads from the store. Nothing is ever dropped for a watcher that lags: it has no queue, only its
position, and everything after it is in the tail or the store.

A stream ends at the job's terminal state event. A job that has ended without one (the writer
died between writing the state and the event, or is still writing it under load) ends the
stream only after :data:`FINAL_EVENT_GRACE_SECONDS` without anything new, and only after a last
read of the store after the watcher's position found nothing.
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

FINAL_EVENT_GRACE_SECONDS = 10.0
"""How long after a job ended its final state event may still be missing (a late writer).

The state and its event are two commits; under load (a thousand uploads sharing SQLite's write
lock with the worker's appends) the second came more than 3 s after the first, and watchers
that gave up after 3 s missed the final event."""


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

    lock: threading.Lock = field(default_factory=threading.Lock)  # one reader at a time
    data: threading.Lock = field(default_factory=threading.Lock)  # the list; never held for I/O
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
        if self.finished_since is not None:
            # Something still came after the job ended: the grace starts again from here.
            self.finished_since = self.last_sent
        return is_final_event(event)

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
        # Async watchers: per event loop, one feed per watched job (see _Feed).
        self._feeds: dict[asyncio.AbstractEventLoop, dict[str, _Feed]] = {}
        self._feeds_lock = threading.Lock()

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
        with self._feeds_lock:
            loops = [(loop, list(feeds.values())) for loop, feeds in self._feeds.items()]
        for loop, feeds in loops:
            # One call per loop, not per watcher: each feed reads its job once and wakes its
            # watchers only if something came. A closed loop's watchers are gone.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_poke_all, feeds)

    def _events_after(self, job_id: str, after_seq: int) -> list[JobEvent]:
        """Up to 500 events after ``after_seq``, read once per change for all watchers."""
        if self._thread is None:  # not polling: no watermark to trust, read directly
            return self._store.list_events(job_id, after_seq, 500)
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None or after_seq < tail.base_seq:
            return self._store.list_events(job_id, after_seq, 500)  # resuming from far back
        with tail.lock:
            self._refresh_locked(tail, job_id)
        events, _ = self._slice(tail, after_seq)
        if events is None:
            return self._store.list_events(job_id, after_seq, 500)
        return events

    def _refresh_locked(self, tail: _Tail, job_id: str, force: bool = False) -> int:
        """Read the job's new events into its tail if it may be stale (``tail.lock`` held);
        returns how many were read (500: more may be waiting)."""
        mark = (self._watermark, self._generation)  # before the read: no change is lost
        if tail.checked == mark and not force:
            return 0
        with tail.data:
            last = tail.events[-1].seq if tail.events else tail.base_seq
        fresh = self._store.list_events(job_id, last, 500)  # only this reader appends
        with tail.data:
            tail.events.extend(fresh)
            if len(fresh) < 500:
                tail.checked = mark  # else more are waiting: read again next time
            if len(tail.events) > _TAIL_EVENTS:
                drop = len(tail.events) - _TAIL_EVENTS
                tail.base_seq = tail.events[drop - 1].seq
                del tail.events[:drop]
        return len(fresh)

    def _refresh_tail(self, job_id: str) -> tuple[int, int]:
        """:meth:`_refresh_locked` for a feed (in a thread); without the polling thread there
        is no watermark to trust and the store is read every time. Returns how many events
        this read added and the tail's last seq after it (-1: no tail)."""
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None:
            return 0, -1
        with tail.lock:
            count = self._refresh_locked(tail, job_id, force=self._thread is None)
            with tail.data:
                return count, (tail.events[-1].seq if tail.events else tail.base_seq)

    def _tail_after(self, job_id: str, after_seq: int) -> tuple[list[JobEvent] | None, bool]:
        """What the shared tail has after ``after_seq`` right now, current or not (None:
        ``after_seq`` is older than the tail), and whether it may be stale. For the event
        loop: never reads the store, never waits for a reader."""
        with self._tails_lock:
            tail = self._tails.get(job_id)
        if tail is None:
            return None, True
        return self._slice(tail, after_seq)

    def _slice(self, tail: _Tail, after_seq: int) -> tuple[list[JobEvent] | None, bool]:
        with tail.data:
            stale = self._thread is None or tail.checked != (self._watermark, self._generation)
            if after_seq < tail.base_seq:
                return None, stale
            start = bisect.bisect_right(tail.events, after_seq, key=lambda e: e.seq)
            return tail.events[start : start + 500], stale

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
                # Before ending without the final event: anything after this watcher's
                # position that the shared tail did not have is read from the store.
                late = self._store.list_events(job_id, w.seq, 500)
                if not late:
                    return
                w.finished_since = time.monotonic()
                for ev in late:
                    terminal = w.sent(ev)
                    yield ev
                    if terminal:
                        return
                continue
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

        The job's :class:`_Feed` on this loop reads the store (in the default executor) once
        per change for all of the job's watchers here and wakes them when the tail grew; a
        watcher takes its events from the tail, or from the store when it is further behind
        than the tail reaches. ``stop`` ends the watch.
        """
        loop = asyncio.get_running_loop()
        self._join(job_id, after_seq)
        feed = self._feed(loop, job_id)
        w = _Watcher(after_seq, heartbeat)
        waiter: asyncio.Future[None] | None = None
        relay = asyncio.ensure_future(_relay(stop, feed, lambda: waiter)) if stop else None
        try:
            while not self._stop.is_set() and not (stop is not None and stop.is_set()):
                # Registered before looking: a feed that grows the tail after the look wakes it.
                if waiter is not None:
                    feed.discard(waiter)
                waiter = feed.waiter()
                events, stale = self._tail_after(job_id, w.seq)
                if events is None:  # further behind than the tail reaches: the store has it
                    events = await asyncio.to_thread(self._store.list_events, job_id, w.seq, 500)
                for ev in events:
                    terminal = w.sent(ev)
                    yield ev
                    if terminal:
                        return
                if events:
                    continue
                if stale:
                    feed.poke()  # a change not read yet: one read for all the job's watchers
                if feed.finished and w.finished_since is None:
                    w.finished_since = time.monotonic()
                elif w.finish_check_due():
                    # The job's answer, asked at most once a second for all its watchers; a
                    # watcher never waits for it (the feed wakes them all when it is "yes").
                    finished = self._finished_cached(job_id)
                    if finished is None:
                        feed.check_finished(is_finished)
                    elif finished:
                        feed.finished = True
                        w.finished_since = time.monotonic()
                if w.gave_up():
                    # Before ending without the final event: read the store after this
                    # watcher's position, past any cache.
                    late = await asyncio.to_thread(self._store.list_events, job_id, w.seq, 500)
                    if not late:
                        return
                    w.finished_since = time.monotonic()
                    for ev in late:
                        terminal = w.sent(ev)
                        yield ev
                        if terminal:
                            return
                    continue
                timer = loop.call_later(w.wait_seconds(), _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                if w.heartbeat_due():
                    yield None
        finally:
            if relay is not None:
                relay.cancel()
            if waiter is not None:
                feed.discard(waiter)
            self._leave(job_id)
            self._unfeed(loop, job_id, feed)

    def _feed(self, loop: asyncio.AbstractEventLoop, job_id: str) -> _Feed:
        """The job's feed on ``loop`` (made for its first watcher there)."""
        with self._feeds_lock:
            feeds = self._feeds.setdefault(loop, {})
            feed = feeds.get(job_id)
            if feed is None:
                feed = feeds[job_id] = _Feed(self, job_id)
            feed.watchers += 1
            return feed

    def _unfeed(self, loop: asyncio.AbstractEventLoop, job_id: str, feed: _Feed) -> None:
        with self._feeds_lock:
            feed.watchers -= 1
            feeds = self._feeds.get(loop)
            if feed.watchers <= 0 and feeds is not None and feeds.get(job_id) is feed:
                del feeds[job_id]
                if not feeds:
                    del self._feeds[loop]


class _Feed:
    """One job's asynchronous watchers on one event loop.

    ``poke()`` (after any change, from :meth:`EventHub.notify`; or from a watcher that finds
    the tail stale) starts one store read for all of them in the default executor — a poke
    while it runs makes it read once more after — and when the tail grew, every registered
    waiter is woken: a future each, resolved in one loop callback. A thousand watchers of a job
    cost one read and one wake-up each per change, not a thousand reads and a task per wait.
    Only the event loop's thread uses a feed.
    """

    def __init__(self, hub: EventHub, job_id: str) -> None:
        self.hub = hub
        self.job_id = job_id
        self.watchers = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._reading: asyncio.Task[None] | None = None
        self._again = False
        self._finishing: asyncio.Future[None] | None = None
        self.finished = False  # the job was seen in a terminal state
        self._woken_at = -1  # the tail's last seq when the waiters were last woken

    def waiter(self) -> asyncio.Future[None]:
        """A future that the next growth of the tail (or a stop) resolves."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        return fut

    def discard(self, fut: asyncio.Future[None]) -> None:
        """Forget a waiter (woken, timed out or gone)."""
        self._waiters.discard(fut)

    def wake_all(self) -> None:
        """Resolve every registered waiter."""
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            _wake(fut)

    def poke(self) -> None:
        """Events may be new: read the store once for all (again, if a read is running)."""
        if self._reading is not None:
            self._again = True
            return
        self._reading = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        hub = self.hub
        try:
            while not hub._stop.is_set():
                self._again = False
                try:
                    count, last = await asyncio.to_thread(hub._refresh_tail, self.job_id)
                except Exception:  # the database failed: the watchers keep waiting; retry
                    await asyncio.sleep(0.5)
                    self._again = True
                    continue
                # Wake on growth of the tail, whoever read it: a thread watcher of the same
                # job (REST's SSE) may have read the new events first, leaving this read
                # nothing, and the waiters asleep until their 1 s fallback timer.
                if count or last > self._woken_at:
                    self._woken_at = last
                    self.wake_all()
                if not self._again and count < 500:
                    break
        finally:
            self._reading = None
            if hub._stop.is_set():
                self.wake_all()

    def check_finished(self, is_finished: Callable[[], bool]) -> None:
        """Ask ``is_finished()`` in a thread unless a question is already out; wake every
        watcher when the answer is yes (each then starts its grace)."""
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._ask(is_finished))

    async def _ask(self, is_finished: Callable[[], bool]) -> None:
        try:
            if await asyncio.to_thread(self.hub._is_finished, self.job_id, is_finished):
                self.finished = True  # a job that has ended stays ended
                self.wake_all()
        except Exception:  # the database failed: asked again at the next check
            pass
        finally:
            self._finishing = None


def _poke_all(feeds: list[_Feed]) -> None:
    for feed in feeds:
        feed.poke()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _relay(
    stop: asyncio.Event, feed: _Feed, current: Callable[[], asyncio.Future[None] | None]
) -> None:
    """Wake the watcher when ``stop`` is set."""
    await stop.wait()
    fut = current()
    if fut is not None:
        _wake(fut)
