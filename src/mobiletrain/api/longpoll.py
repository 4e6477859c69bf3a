"""Federated long polls on the event loop: ``GetTask`` (gRPC) and ``federated/task`` (REST).

A device asking for work may wait up to a minute. Waiting in a worker thread (as the core's
synchronous ``get_task(..., wait_seconds)`` does) lets a few dozen devices starve every other
call of the server; here a poll holds no thread while it waits:

* the core is asked without waiting (``wait_seconds=0``) in a small pool of its own
  (:data:`POLL_THREADS` threads, so devices never compete with admin or upload calls);
* between looks the poll waits on the event loop for the federated service's
  :class:`~mobiletrain.core.wakeup.AsyncWakeup` (pulled whenever a round opens or closes or the
  session ends), and at least once a second, which keeps the device counted as available just
  as the synchronous wait did.

Who may ask, and for which device, stays entirely the core's ``get_task``'s business.
"""

from __future__ import annotations

import asyncio
import contextvars
import time

from mobiletrain.api.pools import CountingThreadPool
from mobiletrain.core.federated import MAX_WAIT_SECONDS, FederatedService, TaskReply, TaskStatus

POLL_THREADS = 4
"""Threads that look at the federated state for waiting devices (each look takes microseconds)."""

LOOK_INTERVAL_SECONDS = 1.0
"""A waiting device is looked at (and marked as seen) at least this often."""

_pool = CountingThreadPool(POLL_THREADS, thread_name_prefix="federated-poll")


def pool_gauge() -> tuple[int, int]:
    """``(busy, size)`` of the poll pool, for the health check."""
    return _pool.gauge()


async def get_task(
    service: FederatedService, project: str, device_id: str, wait_seconds: float
) -> TaskReply:
    """The core's ``get_task(project, device_id, wait_seconds)``, waiting on the event loop.

    Runs as the caller (the principal bound in this context) like the synchronous call.
    """
    loop = asyncio.get_running_loop()
    end = time.monotonic() + max(0.0, min(float(wait_seconds), MAX_WAIT_SECONDS))
    while True:
        seen = service.changes.generation  # before the look: a change during it is not lost
        context = contextvars.copy_context()
        reply = await loop.run_in_executor(
            _pool, context.run, service.get_task, project, device_id, 0.0
        )
        remaining = end - time.monotonic()
        if reply.status is not TaskStatus.WAIT or remaining <= 0:
            return reply
        await service.changes.wait(seen, min(remaining, LOOK_INTERVAL_SECONDS))
