"""Server-Sent Events for job progress.

The core's watch iterator blocks between events, so it runs in worker threads under a capacity
limiter of its own (one per stream): long-lived streams never take the threads that ordinary
requests need. When the client goes away (an ``http.disconnect`` message, a failed write, or
the response task being cancelled), the ``cancelled`` event is set, which makes the watch
return within about a second.

A stream stays open at most ``max_seconds`` (``stream_max_seconds``, 1 h by default), so a
forgotten tab or a half-open connection cannot hold a server thread forever: the response then
ends, and EventSource clients reconnect on their own after ``retry`` ms with ``Last-Event-ID``,
missing nothing.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from mobiletrain.api.rest.schemas import event_to_public
from mobiletrain.core.types import JobEvent

SSE_MEDIA_TYPE = "text/event-stream"
RETRY_MS = 3000
"""Reconnection delay suggested to EventSource clients."""


def format_event(event: JobEvent) -> str:
    """One SSE message: ``id``, ``event`` (the kind) and ``data`` (the event as JSON)."""
    data = event_to_public(event).model_dump_json()
    return f"id: {event.seq}\nevent: {event.kind.value}\ndata: {data}\n\n"


KEEP_ALIVE = ": keep-alive\n\n"


def sse_lines(watch: Iterator[JobEvent | None]) -> Iterator[str]:
    """SSE text for a watch iterator: events as messages, heartbeats as comments."""
    try:
        yield f"retry: {RETRY_MS}\n\n"
        for item in watch:
            yield KEEP_ALIVE if item is None else format_event(item)
    finally:
        close = getattr(watch, "close", None)
        if close is not None:
            close()  # end the watch now, not whenever the generator is collected


_END: Any = object()


def _next(lines: Iterator[str], cancelled: threading.Event) -> str:
    line: str = next(lines, _END)
    if cancelled.is_set() and line is not _END:
        # The consumer gave up while we were waiting (the call was abandoned): release the
        # watch here, since nobody will ask for the next line.
        close = getattr(lines, "close", None)
        if close is not None:
            close()
    return line


async def _iterate_in_own_thread(
    lines: Iterator[str], cancelled: threading.Event
) -> AsyncIterator[str]:
    limiter = anyio.CapacityLimiter(1)
    in_thread = False
    try:
        while True:
            # Abandoned on cancellation (the response was cancelled): ``cancelled`` is set
            # below, so the thread's watch returns within about a second on its own.
            in_thread = True
            line = await anyio.to_thread.run_sync(
                _next, lines, cancelled, limiter=limiter, abandon_on_cancel=True
            )
            in_thread = False
            if line is _END:
                return
            yield line
    finally:
        cancelled.set()
        close = getattr(lines, "close", None)
        if not in_thread and close is not None:
            close()


class EventStreamResponse(StreamingResponse):
    """A streaming SSE response that notices a client disconnect while it waits for events."""

    def __init__(
        self,
        lines: Iterator[str],
        cancelled: threading.Event,
        headers: dict[str, str] | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self._cancelled = cancelled
        self._max_seconds = max_seconds
        super().__init__(
            _iterate_in_own_thread(lines, cancelled),
            media_type=SSE_MEDIA_TYPE,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
                **(headers or {}),
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the events; stop the watch when the client disconnects."""
        async with anyio.create_task_group() as tg:

            async def listen_for_disconnect() -> None:
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        self._cancelled.set()
                        tg.cancel_scope.cancel()
                        return

            async def end_when_time_is_up(seconds: float) -> None:
                await anyio.sleep(seconds)
                self._cancelled.set()  # the watch returns; the response ends normally

            tg.start_soon(listen_for_disconnect)
            if self._max_seconds is not None:
                tg.start_soon(end_when_time_is_up, self._max_seconds)
            try:
                await self.stream_response(send)
            except OSError:
                pass  # the client went away while we were writing
            finally:
                self._cancelled.set()
                tg.cancel_scope.cancel()
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
