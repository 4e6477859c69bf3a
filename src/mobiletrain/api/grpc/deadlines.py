"""Server-side deadlines: no gRPC call runs longer than the server allows, whatever the client asks.

A phone may set no deadline at all, or go quiet in the middle of a client stream while its
connection stays up; without a server-side bound such a call would hold one of the server's
handler threads forever. Every call of the mobiletrain services therefore gets a
:class:`CallDeadline` when it starts (see ``ErrorInterceptor``):

* **unary calls** may run ``unary_seconds`` (default 60 s);
* **streams** (uploads, downloads, ``WatchJob``, federated streams) may stay open
  ``stream_seconds`` (default 1 h). At that moment the deadline *expires*: handlers that wait
  (``WatchJob``) are woken, the interceptor stops passing messages either way, and the call ends
  with ``DEADLINE_EXCEEDED`` and error code 73, which tells the client to reconnect or resume
  (``after_seq``, the upload offset, the download offset).

A handler that does not notice (blocked reading a client stream that sends nothing, or a unary
call stuck in a slow dependency) is *stopped*: after ``grace_seconds`` more (0 for unary calls)
the :class:`Watchdog` cancels the call with ``DEADLINE_EXCEEDED``. Cancelling wakes a handler
blocked on the request stream at once, so its thread is freed.

One watchdog thread serves every call: a heap of due times, not a timer thread per call.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

import grpc

log = logging.getLogger("mobiletrain.api.grpc")

_current: ContextVar[CallDeadline | None] = ContextVar("mobiletrain_call_deadline", default=None)


class CallDeadline:
    """When the current call must end, and a signal for the handlers that wait."""

    def __init__(self, seconds: float, stream: bool) -> None:
        self.seconds = seconds
        self.stream = stream
        self.at = time.monotonic() + seconds
        self.expired = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(self.at - time.monotonic(), 0.0)

    def on_expiry(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the deadline expires (at once if it already has)."""
        with self._lock:
            if not self.expired.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def expire(self) -> None:
        """Mark the deadline as passed and wake whoever registered a callback."""
        with self._lock:
            if self.expired.is_set():
                return
            self.expired.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one bad callback must not keep the others from running
                log.exception("deadline callback failed")


def current_deadline() -> CallDeadline | None:
    """The deadline of the gRPC call being handled in this thread, if any."""
    return _current.get()


def bind(deadline: CallDeadline) -> Callable[[], None]:
    """Make ``deadline`` the current one; returns the function that unbinds it."""
    token = _current.set(deadline)
    return lambda: _current.reset(token)


def stop_call(context: grpc.ServicerContext, message: str) -> None:
    """End a call from outside its handler thread with ``DEADLINE_EXCEEDED``.

    grpcio's public ``ServicerContext.cancel()`` can only say CANCELLED, which a client would
    take for its own doing. The underlying call object accepts a status, so use it when it is
    there and fall back to a plain cancel otherwise.
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        if call is not None:
            call.cancel(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message)
        else:
            context.cancel()
    except Exception:  # the call ended in the meantime
        log.debug("stopping an overdue call failed", exc_info=True)


class _Entry:
    """A running call as the watchdog sees it."""

    __slots__ = ("context", "deadline", "done")

    def __init__(self, context: grpc.ServicerContext, deadline: CallDeadline) -> None:
        self.context: grpc.ServicerContext | None = context
        self.deadline: CallDeadline | None = deadline
        self.done = False


COMPACT_AFTER = 4096
"""Heap items of finished calls tolerated before the heap is rebuilt without them."""


class Watchdog:
    """Expires call deadlines and stops the calls that overrun them by more than the grace."""

    def __init__(self, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds
        self._heap: list[tuple[float, int, str, _Entry]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._finished_items = 0
        self.stopped_calls = 0
        """How many calls the watchdog had to stop (they ignored their deadline)."""

    def watch(self, context: grpc.ServicerContext, deadline: CallDeadline) -> Callable[[], None]:
        """Start watching a call; returns the function to call when the call has ended."""
        entry = _Entry(context, deadline)
        grace = self.grace_seconds if deadline.stream else 0.0
        with self._cond:
            if deadline.stream:
                heapq.heappush(self._heap, (deadline.at, next(self._order), "expire", entry))
            heapq.heappush(self._heap, (deadline.at + grace, next(self._order), "stop", entry))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="grpc-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

        def finished() -> None:
            with self._cond:
                entry.done = True
                # Let the call's objects go now; the heap keeps only this small entry.
                entry.context = entry.deadline = None
                self._finished_items += 2 if deadline.stream else 1
                if self._finished_items > COMPACT_AFTER and self._finished_items * 2 > len(
                    self._heap
                ):
                    # Mostly finished calls waiting for their due time (streams' is an hour
                    # away): drop them rather than let the heap grow with the call rate.
                    self._heap = [item for item in self._heap if not item[3].done]
                    heapq.heapify(self._heap)
                    self._finished_items = 0

        return finished

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, action, entry = heapq.heappop(self._heap)
                if entry.done:
                    self._finished_items -= 1
                    continue
                context, deadline = entry.context, entry.deadline
            if context is None or deadline is None:
                continue
            deadline.expire()
            if action == "stop":
                self.stopped_calls += 1
                log.warning(
                    "stopping a call that ran past its %g s server deadline", deadline.seconds
                )
                stop_call(context, deadline_message(deadline))


def deadline_message(deadline: CallDeadline) -> str:
    """What a client is told when its call reached the server's deadline."""
    if deadline.stream:
        return (
            f"the stream reached the server's maximum duration ({deadline.seconds:g} s); "
            "reconnect and resume from the last sequence number or offset"
        )
    return f"the call ran longer than the server's deadline ({deadline.seconds:g} s)"
