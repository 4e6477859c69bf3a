"""Synchronous servicer code on the asyncio gRPC server.

The gRPC server is ``grpc.aio``: a call that only waits (a ``WatchJob`` stream between events)
costs a coroutine, not a thread, so one process holds thousands of watchers. Most servicer
methods stay synchronous (they call the synchronous core and its database); they run in a
bounded thread pool, and these adapters give them what they had on the threaded server:

* :class:`SyncContext`, the part of ``grpc.ServicerContext`` they use (``is_active``,
  ``add_callback``, metadata);
* :class:`RequestPump`, a client stream as a plain iterator: a task reads the messages on the
  event loop into a small queue (backpressure: it waits while the queue is full) and the handler
  thread takes them out; when the call ends early the iterator raises :class:`CallEnded`, so a
  thread blocked on a silent client is freed;
* :func:`iterate_in_pool`, a synchronous response generator advanced one item at a time in the
  pool, so a thread is held only while an item is being made.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

import grpc

_END: Any = object()


class CallEnded(Exception):
    """The call ended (client gone, deadline, server stopping) while a handler still ran."""


class SyncContext:
    """The call as synchronous servicer code sees it."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        context.add_done_callback(self._done)  # type: ignore[arg-type]

    def _done(self, _context: Any) -> None:
        self.end()

    def end(self) -> None:
        """Mark the call as over and run the registered callbacks (once)."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_active(self) -> bool:
        """False once the call has ended."""
        return not self._ended.is_set()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` when the call ends; False (not registered) if it already has."""
        with self._lock:
            if self._ended.is_set():
                return False
            self._callbacks.append(callback)
            return True

    def invocation_metadata(self) -> Any:
        """The client's metadata."""
        return self._context.invocation_metadata()

    def peer(self) -> str:
        """The client's address."""
        return str(self._context.peer())

    def time_remaining(self) -> float | None:
        """Seconds left of the client's own deadline (None: no deadline)."""
        return self._context.time_remaining()


class RequestPump:
    """An async client stream read on the loop, consumed as an iterator in a pool thread."""

    def __init__(self, requests: AsyncIterator[Any], size: int = 16) -> None:
        self._requests = requests
        self._queue: queue.Queue[Any] = queue.Queue(size)
        self._failure: BaseException | None = None
        self._failed = threading.Event()

    async def run(self) -> None:
        """Move the messages into the queue until the stream ends or the call does."""
        try:
            async for message in self._requests:
                await self._put(message)
            await self._put(_END)
        except BaseException as exc:  # cancelled, or the stream broke: wake the consumer
            self._failure = exc
            self._failed.set()
            raise

    async def _put(self, item: Any) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.002)  # the handler is busy with earlier messages

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                if self._failed.is_set():
                    raise CallEnded(f"the request stream ended: {self._failure!r}") from None
                continue
            if item is _END:
                raise StopIteration
            return item


async def run_in_pool(
    executor: Executor, context: contextvars.Context, fn: Callable[..., Any], *args: Any
) -> Any:
    """``fn(*args)`` in a pool thread, inside ``context`` (principal, deadline)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, context.run, fn, *args)


async def iterate_in_pool(
    executor: Executor, context: contextvars.Context, items: Iterator[Any]
) -> AsyncIterator[Any]:
    """The items of a synchronous generator, each made in a pool thread."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await loop.run_in_executor(executor, context.run, _next, items)
            if item is _END:
                return
            yield item
    finally:
        # Not awaited: this may run while the task is being cancelled.
        loop.run_in_executor(executor, _close, items)


def _next(items: Iterator[Any]) -> Any:
    return next(items, _END)


def _close(items: Iterator[Any]) -> None:
    """Close a generator now so its ``finally`` blocks run (watch slots, sessions)."""
    close = getattr(items, "close", None)
    try:
        if close is not None:
            close()
    except ValueError:
        pass  # still running in another thread (a call cut mid-item): closed when collected
