"""Federated long polls on the event loop: ``GetTask`` (gRPC) and ``federated/task`` (REST).

A device asking for its assignment may wait up to a minute. Waiting in a worker thread (as
the federated service's synchronous ``get_assignment(..., wait_seconds)`` does) lets a few
dozen devices starve every other call of the server; here a poll holds no thread while it waits:

* the service is asked without waiting (``wait_seconds=0``) in a small pool of its own
  (:data:`POLL_THREADS` threads, so devices never compete with admin or upload calls);
* between looks the poll waits on the event loop for the federated service's
  :class:`~mobiletrain.core.wakeup.AsyncWakeup` (pulled whenever a round opens or closes or the
  session ends), and at least once a second, which keeps the device counted as available just
  as the synchronous wait did.

Who may ask, and for which device, stays entirely ``get_assignment``'s business. (The wire's
names, ``GetTask`` and ``/federated/task``, stay: in Python the device's work is an assignment.)
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mobiletrain.api.pools import CountingThreadPool
from mobiletrain.federated.device import MAX_WAIT_SECONDS, AssignmentReply, AssignmentStatus
from mobiletrain.federated.service import FederatedService

T = TypeVar("T")

POLL_THREADS = 4
"""Threads that look at the federated state for waiting devices (each look takes microseconds)."""

LOOK_INTERVAL_SECONDS = 1.0
"""A waiting device is looked at (and marked as seen) at least this often."""

_pool = CountingThreadPool(POLL_THREADS, thread_name_prefix="federated-poll")


UPDATE_THREADS = 16
"""Threads that take in updates of ``Participate`` streams (the core decodes at most a few at a
time; the others wait for its slots here, not in the gRPC handler pool)."""

_updates = CountingThreadPool(UPDATE_THREADS, thread_name_prefix="federated-update")


def pool_gauge() -> tuple[int, int]:
    """``(busy, size)`` of the poll pool, for the health check."""
    return _pool.gauge()


def update_pool_gauge() -> tuple[int, int]:
    """``(busy, size)`` of the update pool, for the health check."""
    return _updates.gauge()


async def run_update(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the update pool, as the caller (its context: principal, deadline)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_updates, context.run, fn, *args)


async def get_assignment(
    service: FederatedService, project: str, device_id: str, wait_seconds: float
) -> AssignmentReply:
    """The service's ``get_assignment(project, device_id, wait_seconds)``, waiting on the
    event loop.

    Runs as the caller (the principal bound in this context) like the synchronous call.
    """
    loop = asyncio.get_running_loop()
    end = time.monotonic() + max(0.0, min(float(wait_seconds), MAX_WAIT_SECONDS))
    while True:
        seen = service.changes.generation  # before the look: a change during it is not lost
        context = contextvars.copy_context()
        reply = await loop.run_in_executor(
            _pool, context.run, service.get_assignment, project, device_id, 0.0
        )
        remaining = end - time.monotonic()
        if reply.status is not AssignmentStatus.WAIT or remaining <= 0:
            return reply
        await service.changes.wait(seen, min(remaining, LOOK_INTERVAL_SECONDS))
