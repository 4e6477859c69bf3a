"""Process-wide memory settings of the server (glibc's allocator).

glibc serves a ``malloc`` of 128 KiB or more with its own ``mmap`` and gives it back to the
system on ``free``, but raises that threshold to the size of every such block freed (up to
32 MiB). After the first 10 MB buffer is freed, every buffer up to 10 MB therefore comes from
the heap arena of the thread that asked for it, and freed ones stay there: a federated round
with a 10 MB model on 50 devices left the server at 1.3-1.5 GB RSS for about 0.2 GB of live
data (docs/benchmarks.md, issue 18). Pinning the threshold at 4 MiB keeps model-sized buffers
(weights, model files, numpy temporaries) mapped and given back when freed, while the 1 MiB
gRPC messages stay in the arenas, where they are reused at once: pinned at 1 MiB, every message
was a fresh mapping, and the page faults made a round 2-3 times slower.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("mobiletrain")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LARGE_BUFFER_BYTES = 4 * 1024 * 1024
"""Allocations of this size or more are mapped and given back to the system when freed."""


def return_large_buffers(threshold: int = LARGE_BUFFER_BYTES) -> bool:
    """Pin glibc's mmap threshold at ``threshold`` bytes (True when set; False off glibc,
    e.g. on macOS or musl, where nothing changes). Setting ``MALLOC_MMAP_THRESHOLD_`` in the
    environment does the same before the process starts."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
    if not ok:
        log.warning("could not set glibc's mmap threshold")
    return ok
