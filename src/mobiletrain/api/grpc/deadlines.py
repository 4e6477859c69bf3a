"""Server-side deadlines: no gRPC call runs longer than the server allows, whatever the client asks.

A phone may set no deadline at all, or go quiet in the middle of a client stream while its
connection stays up; without a server-side bound such a call would hold its handler (and, for
synchronous servicer code, one of the pool's threads) forever. Every call of the mobiletrain
services therefore gets a :class:`CallDeadline` when it starts (:class:`DeadlinePolicy`):

* **unary calls** may run ``unary_seconds`` (default 60 s);
* **streams** (uploads, downloads, ``WatchJob``, federated streams) may stay open
  ``stream_seconds`` (default 1 h). At that moment the deadline *expires*: handlers that wait
  (``WatchJob``) are woken, the interceptor stops passing messages either way, and the call ends
  with ``DEADLINE_EXCEEDED`` and error code 73, which tells the client to reconnect or resume
  (``after_seq``, the upload offset, the download offset).

A handler that does not notice (blocked reading a client stream that sends nothing, or a unary
call stuck in a slow dependency) is *cut*: after ``grace_seconds`` more (0 for unary calls) the
interceptor's ``asyncio.timeout`` cancels it and the call ends with ``DEADLINE_EXCEEDED`` and
code 73. The client stream's pump stops with it, which wakes a pool thread blocked on the next
message, so the thread is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass

from mobiletrain.core.errors import ErrorCode, MobiletrainError

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

    def unbind() -> None:
        # Closed from another context (the event loop finalising an abandoned stream's
        # generator) the reset fails: that context is discarded, there is nothing to restore.
        with contextlib.suppress(ValueError):
            _current.reset(token)

    return unbind


def deadline_message(deadline: CallDeadline) -> str:
    """What a client is told when its call reached the server's deadline."""
    if deadline.stream:
        return (
            f"the stream reached the server's maximum duration ({deadline.seconds:g} s); "
            "reconnect and resume from the last sequence number or offset"
        )
    return f"the call ran longer than the server's deadline ({deadline.seconds:g} s)"


def check_deadline() -> None:
    """Raise DEADLINE_EXCEEDED once the current call's server-side deadline has expired."""
    deadline = current_deadline()
    if deadline is not None and deadline.expired.is_set():
        raise MobiletrainError(ErrorCode.DEADLINE_EXCEEDED, deadline_message(deadline))


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long calls may run (see the module docstring)."""

    unary_seconds: float = 60.0
    stream_seconds: float = 3600.0
    grace_seconds: float = 5.0

    def start(self, stream: bool, stack: ExitStack) -> CallDeadline:
        """The deadline of a call starting now, bound for its handlers until ``stack`` closes;
        a stream's deadline also expires (wakes its waiting handlers) when it is reached."""
        deadline = CallDeadline(self.stream_seconds if stream else self.unary_seconds, stream)
        stack.callback(bind(deadline))
        if stream:  # streams are told first, and cut only after the grace
            loop = asyncio.get_running_loop()
            stack.callback(loop.call_later(deadline.seconds, deadline.expire).cancel)
        return deadline

    def hard_stop(self, deadline: CallDeadline) -> asyncio.Timeout:
        """The timeout that cuts a handler that did not notice its deadline."""
        grace = self.grace_seconds if deadline.stream else 0.0
        return asyncio.timeout(deadline.remaining() + grace)
