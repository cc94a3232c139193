"""The page's forecasts run on a fixed pool of threads with a short queue before it; past both, 503.

Each admitted request holds a place from its first byte to its answer, so the memory of the bodies
being read and the threads working are bounded together. Its work runs under a ``WorkBudget``
(decompressed text, CPU seconds) and stops at the next check once its client has left; a request
still waiting for a thread when its client leaves is dropped at once and gives its place back.

A compressed upload may cost up to its whole budget (a gzip bomb is stopped only once it has
unpacked 16 MiB, or its text passes the limit), so compressed uploads run on a thread of their own,
one at a time, at the lowest CPU priority (on Linux): however many arrive, the workers stay free
for plain uploads (CSV and JSON profiles), and a bomb gets the CPU only when they leave it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from profcast.limits import ClientGone, WorkBudget, positive_env, spending

WORKERS_ENV = "PROFCAST_WEB_WORKERS"
DEFAULT_WORKERS = 2  # threads forecasting at once: about the cores of a small machine
QUEUE_ENV = "PROFCAST_WEB_QUEUE"
DEFAULT_QUEUE = 10  # requests waiting for a thread (or still uploading) before the page answers 503
RETRY_AFTER_SECONDS = 2  # a normal forecast takes well under a second once its model is loaded
DISCONNECT_POLL_SECONDS = 0.2
GZIP_MAGIC = b"\x1f\x8b"
LOWEST_PRIORITY = 19  # nice value of the compressed uploads' thread


def is_compressed(content: bytes) -> bool:
    """Whether an upload is gzip (its text may be far larger than its bytes)."""
    return content[:2] == GZIP_MAGIC


class ForecastWorkers:
    """A bounded pool: ``admit`` a request (False when full: answer 503), ``run`` its work, ``release`` it."""

    def __init__(self, workers: int | None = None, queue: int | None = None):
        self.workers = workers or positive_env(WORKERS_ENV, DEFAULT_WORKERS)
        self.capacity = self.workers + (queue if queue is not None else positive_env(QUEUE_ENV, DEFAULT_QUEUE))
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="profcast-forecast")
        self.compressed_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="profcast-compressed", initializer=lower_thread_priority
        )
        self.admitted = 0  # changed on the event loop's thread only: no lock

    def admit(self) -> bool:
        """Take a place for one request; False when every worker and queue place is taken."""
        if self.admitted >= self.capacity:
            return False
        self.admitted += 1
        return True

    def release(self) -> None:
        """Give back a request's place."""
        self.admitted -= 1

    def busy_message(self) -> str:
        """The 503's line."""
        return (
            f"the page is busy ({self.admitted} requests for {self.workers} workers and "
            f"{self.capacity - self.workers} queue places; {WORKERS_ENV}, {QUEUE_ENV}); "
            f"try again in {RETRY_AFTER_SECONDS} s"
        )

    async def run(self, request, budget: WorkBudget, work, *args, compressed: bool = False, **kwargs):
        """``work(*args, **kwargs)`` on a worker thread under ``budget``; ClientGone as soon as ``request``'s
        client leaves (the thread stops at its next budget check)."""
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(cancel_when_gone(request, budget, asyncio.current_task()))
        executor = self.compressed_executor if compressed else self.executor
        try:
            return await loop.run_in_executor(executor, functools.partial(within, budget, work, *args, **kwargs))
        except asyncio.CancelledError:
            if budget.cancelled:  # cancelled by the watcher: the client left, the request ends here
                asyncio.current_task().uncancel()
                raise ClientGone("the client closed the connection") from None
            raise
        finally:
            watcher.cancel()
            budget.cancel()  # done, or this coroutine was cancelled: either way nothing more is wanted

    def shutdown(self) -> None:
        """Stop the threads once their work ends (queued work is dropped)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.compressed_executor.shutdown(wait=False, cancel_futures=True)


def lower_thread_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: nice applies per thread; elsewhere it would
    apply to the whole server, so it is left alone)."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
        except OSError:  # not allowed here: the thread keeps the server's priority
            pass


def within(budget: WorkBudget, work, *args, **kwargs):
    """Run ``work`` on this thread under ``budget`` (its CPU seconds counted from here)."""
    with spending(budget):
        return work(*args, **kwargs)


async def cancel_when_gone(request, budget: WorkBudget, waiting: asyncio.Task) -> None:
    """Poll whether the client is still connected; when it is not, cancel ``budget`` and the ``waiting`` task:
    work still queued for the lane or a thread is dropped, work running stops at its next budget check."""
    while not budget.cancelled:
        if await request.is_disconnected():
            budget.cancel()
            waiting.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
