"""Micro-batching: images from concurrent requests share one forward pass.

One asyncio task owns the model. Requests put their images in a bounded queue and await futures; the
task takes the oldest image, waits at most `max_wait_ms` (counted from that image's arrival) for up to
`max_batch - 1` more with the same test settings, and runs them together in a single worker thread,
so the event loop keeps accepting requests while the model computes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MicroBatcher", "QueueFull"]

log = logging.getLogger(__name__)

# run(key, images) -> one result per image, in order; called in the batcher's worker thread.
RunFn = Callable[[Hashable, list[np.ndarray]], Sequence[Any]]


class QueueFull(Exception):
    """The queue has no room for the images of a request."""


@dataclass
class _Job:
    key: Hashable
    image: np.ndarray
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gathers images into batches of up to `max_batch`, each run by `run` in one worker thread.

    Args:
        run: `run(key, images)` -> results; images of one call share `key` (e.g. flip/scale settings).
        max_batch: images per call of `run`.
        max_wait_ms: longest wait of the oldest image for more to join it.
        max_queue: images waiting (not yet running) at most; `submit` raises `QueueFull` beyond.
    """

    def __init__(self, run: RunFn, max_batch: int = 8, max_wait_ms: float = 10.0, max_queue: int = 64) -> None:
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait_ms)) / 1000.0
        self.max_queue = max(1, int(max_queue))
        self._jobs: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # calls of `run` so far
        self.images = 0  # images run so far

    @property
    def pending(self) -> int:
        """Images waiting for a batch."""
        return len(self._jobs)

    def start(self) -> None:
        """Start the batching task on the running event loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grapepose-model")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="grapepose-batcher")

    async def close(self) -> None:
        """Stop the task; images still waiting fail with `RuntimeError`."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def submit(self, key: Hashable, images: Sequence[np.ndarray]) -> list[asyncio.Future]:
        """Queue `images` (all or none) and return one future per image.

        Raises:
            QueueFull: fewer than `len(images)` free places in the queue.
        """
        self.start()
        if len(self._jobs) + len(images) > self.max_queue:
            raise QueueFull(f"{len(self._jobs)} images queued (limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        futures = []
        for image in images:
            job = _Job(key, image, loop.create_future())
            self._jobs.append(job)
            futures.append(job.future)
        assert self._wake is not None
        self._wake.set()
        return futures

    async def _next_batch(self) -> list[_Job]:
        """Wait for jobs, then for the batch to fill or the oldest job's wait to run out."""
        assert self._wake is not None
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()
        first = self._jobs[0]
        while sum(j.key == first.key for j in self._jobs) < self.max_batch:
            remaining = first.arrived + self.max_wait - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch, rest = [], deque()
        while self._jobs:
            job = self._jobs.popleft()
            if job.key == first.key and len(batch) < self.max_batch:
                batch.append(job)
            else:
                rest.append(job)
        self._jobs.extendleft(reversed(rest))
        return [j for j in batch if not j.future.done()]  # drop those whose client went away

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._run_isolated, batch[0].key, batch)
            except Exception as e:  # noqa: BLE001 - delivered to the requests, the loop goes on
                results = [e] * len(batch)
            for job, res in zip(batch, results):
                if job.future.done():
                    continue
                if isinstance(res, BaseException):
                    job.future.set_exception(res)
                else:
                    job.future.set_result(res)

    def _run_isolated(self, key: Hashable, batch: list[_Job]) -> list[Any]:
        """Run the batch; if it fails, run its images one by one so one bad image fails only itself."""
        images = [j.image for j in batch]
        self.batches += 1
        self.images += len(images)
        try:
            return list(self._run(key, images))
        except Exception as e:  # noqa: BLE001
            if len(images) == 1:
                return [e]
            log.warning("a batch of %d images failed (%s); running them one by one", len(images), e)
        out: list[Any] = []
        for image in images:
            self.batches += 1
            try:
                out.extend(self._run(key, [image]))
            except Exception as e:  # noqa: BLE001
                out.append(e)
        return out
