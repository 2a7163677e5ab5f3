"""Micro-batching: requests that arrive together share one forward pass of the image tower.

A forward pass over 16 images costs little more than over one (on a GPU, or on a CPU for a small
model), so the service queues decoded images and a single worker takes whatever has arrived within
`max_wait_ms` of the first waiting request (up to `max_batch` images), runs them as one batch in a
dedicated thread (torch calls never overlap), and hands each request its own slice of the answer.
A lone request waits at most `max_wait_ms` extra.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from addressclip.serve.priority import lower_thread_priority

RunBatch = Callable[[np.ndarray, int, Sequence[str]], list[Any]]


@dataclass
class _Request:
    pixels: np.ndarray  # (n, 3, S, S) uint8
    top_k: int
    names: list[str]
    future: asyncio.Future = field(repr=False)


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        mean = self.images / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "images": self.images,
            "largest_batch": self.largest_batch,
            "mean_batch": round(mean, 3),
            "busy_seconds": round(self.busy_seconds, 3),
        }


class MicroBatcher:
    """Gathers concurrent `submit` calls into batches for `run_batch(pixels, top_k, names)`."""

    def __init__(
        self, run_batch: RunBatch, max_batch: int = 32, max_wait_ms: float = 5.0, thread_nice: int = 0
    ) -> None:
        self.run_batch = run_batch
        self.thread_nice = thread_nice  # the model thread's nice value (serve.priority)
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="addressclip-model",
            initializer=lower_thread_priority,
            initargs=(self.thread_nice,),
        )
        self._worker = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = None

    async def submit(self, pixels: np.ndarray, top_k: int, names: Sequence[str]) -> list[Any]:
        """Queue `pixels` (n, 3, S, S); returns the n results once their batch has run."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(pixels, int(top_k), list(names), future))
        return await future

    async def _gather(self) -> list[_Request]:
        assert self._queue is not None
        first = await self._queue.get()
        taken, count = [first], len(first.pixels)
        deadline = time.monotonic() + self.max_wait
        while count < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            taken.append(item)
            count += len(item.pixels)
        return taken

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            requests = await self._gather()
            live = [r for r in requests if not r.future.done()]  # a client that went away
            if not live:
                continue
            pixels = np.concatenate([r.pixels for r in live])
            names = [name for r in live for name in r.names]
            top_k = max(r.top_k for r in live)
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, pixels, top_k, names)
            except Exception as error:  # one failing batch must not stop the worker
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self._record(len(pixels), time.perf_counter() - started)
            offset = 0
            for request in live:
                part = results[offset : offset + len(request.pixels)]
                offset += len(request.pixels)
                if not request.future.done():
                    request.future.set_result(part)

    def _record(self, images: int, seconds: float) -> None:
        self.stats.batches += 1
        self.stats.images += images
        self.stats.largest_batch = max(self.stats.largest_batch, images)
        self.stats.busy_seconds += seconds
