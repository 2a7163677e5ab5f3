"""Bulk work below the event loop: decode, JSON parsing and the model run in lower-priority threads.

On two cores a service that decodes 10 MB photos keeps every core busy; the event loop (which answers
/healthz, /readyz and accepts connections) then waits its turn behind the decoding threads. Linux lets
a process lower the priority of one of its own threads (a per-thread nice value, no privilege needed),
so every thread that does bulk work raises its nice value once, and the event loop keeps the default.
`speed/bench_serve_memory.py` measures the effect (/healthz latency under 16 clients posting maximal
bodies). Elsewhere than Linux the call does nothing: a nice value there belongs to the whole process.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

DEFAULT_BULK_NICE = 19  # the lowest priority: bulk work runs in whatever CPU the event loop leaves
_state = threading.local()


def lower_thread_priority(nice: int) -> None:
    """Raise the calling OS thread's nice value to `nice` (once per thread; 0 leaves it alone)."""

    if nice <= 0 or sys.platform != "linux" or getattr(_state, "nice", 0) >= nice:
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)  # per thread on Linux: `tid` names one thread
    except OSError:  # a sandbox that forbids it: serve at the default priority
        pass
    _state.nice = nice


class BulkRunner:
    """Runs blocking calls in the thread pool at the bulk priority: `await bulk(fn, *args)`."""

    def __init__(self, nice: int = DEFAULT_BULK_NICE) -> None:
        self.nice = max(0, int(nice))

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        lower_thread_priority(self.nice)
        return fn(*args)

    async def __call__(self, fn: Callable[..., T], *args: object) -> T:
        return await run_in_threadpool(self._call, fn, *args)
