"""Wake-ups from threads to asyncio waiters, so a long poll can wait without holding a thread.

The core's state changes happen on threads (the federated coordinator opens and closes rounds
under a ``threading.Condition``). A long poll on the event loop (``GetTask`` over gRPC or REST)
must not block a thread on that condition; it waits on :class:`AsyncWakeup` instead, which the
condition pulls on every ``notify_all``. A waiter remembers :attr:`AsyncWakeup.generation` before
it looks at the state, so a wake-up that comes between the look and the wait is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class AsyncWakeup:
    """A generation counter that threads bump and asyncio code on any loop can wait for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Event]] = {}

    @property
    def generation(self) -> int:
        """Bumped by every :meth:`wake`."""
        return self._generation

    def wake(self) -> None:
        """Wake every waiter (callable from any thread, cheap: one call per event loop)."""
        with self._lock:
            self._generation += 1
            waiting = [(loop, list(events)) for loop, events in self._waiters.items()]
        for loop, events in waiting:
            with contextlib.suppress(RuntimeError):  # a closed loop has no waiters left
                loop.call_soon_threadsafe(_set_all, events)

    async def wait(self, since: int, timeout: float) -> bool:
        """Wait until the generation differs from ``since`` or ``timeout`` passes.

        Returns True when woken. Holds no thread while it waits.
        """
        if self._generation != since:
            return True
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(loop, set()).add(event)
        try:
            if self._generation != since:  # woken between the check and the registration
                return True
            try:
                await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                return False
            return True
        finally:
            with self._lock:
                events = self._waiters.get(loop)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[loop]


class WakingCondition(threading.Condition):
    """A condition whose ``notify_all`` also wakes the asyncio waiters of ``wakeup``."""

    def __init__(self, wakeup: AsyncWakeup) -> None:
        super().__init__()
        self._wakeup = wakeup

    def notify_all(self) -> None:
        """Wake the thread waiters and the asyncio ones."""
        super().notify_all()
        self._wakeup.wake()


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()
