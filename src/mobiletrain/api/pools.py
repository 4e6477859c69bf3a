"""Worker thread pools that say how busy they are (for the health check)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class CountingThreadPool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that counts the work items running or waiting in it."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.size = max_workers
        self._pending = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Submit ``fn(*args, **kwargs)``, counted until it has run."""
        with self._count_lock:
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: object) -> None:
        with self._count_lock:
            self._pending -= 1

    def gauge(self) -> tuple[int, int]:
        """``(busy, size)``: work items running or queued (capped at the size), pool size."""
        with self._count_lock:
            return min(self._pending, self.size), self.size

    def backlog(self) -> int:
        """Work items waiting for a thread."""
        with self._count_lock:
            return max(0, self._pending - self.size)
