"""The page's forecasts run on a fixed pool of threads with a short queue before it; past both, 503.

Each admitted request holds a place from its first byte to its answer, so the memory of the bodies
being read and the threads working are bounded together. Its work runs under a ``WorkBudget``
(decompressed text, CPU seconds) and stops at the next check once its client has left.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from profcast.limits import WorkBudget, positive_env, spending

WORKERS_ENV = "PROFCAST_WEB_WORKERS"
DEFAULT_WORKERS = 2  # threads forecasting at once: about the cores of a small machine
QUEUE_ENV = "PROFCAST_WEB_QUEUE"
DEFAULT_QUEUE = 6  # requests waiting for a thread (or still uploading) before the page answers 503
RETRY_AFTER_SECONDS = 2  # a normal forecast takes well under a second once its model is loaded
DISCONNECT_POLL_SECONDS = 0.2


class ForecastWorkers:
    """A bounded pool: ``admit`` a request (False when full: answer 503), ``run`` its work, ``release`` it."""

    def __init__(self, workers: int | None = None, queue: int | None = None):
        self.workers = workers or positive_env(WORKERS_ENV, DEFAULT_WORKERS)
        self.capacity = self.workers + (queue if queue is not None else positive_env(QUEUE_ENV, DEFAULT_QUEUE))
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="profcast-forecast")
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

    async def run(self, request, budget: WorkBudget, work, *args, **kwargs):
        """``work(*args, **kwargs)`` on a worker thread under ``budget``, cancelled when ``request``'s client leaves."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, functools.partial(within, budget, work, *args, **kwargs))
        watcher = asyncio.create_task(cancel_when_gone(request, budget))
        try:
            return await future
        finally:
            watcher.cancel()
            budget.cancel()  # done, or this coroutine was cancelled: either way nothing more is wanted

    def shutdown(self) -> None:
        """Stop the threads once their work ends (queued work is dropped)."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def within(budget: WorkBudget, work, *args, **kwargs):
    """Run ``work`` on this thread under ``budget`` (its CPU seconds counted from here)."""
    with spending(budget):
        return work(*args, **kwargs)


async def cancel_when_gone(request, budget: WorkBudget) -> None:
    """Poll whether the client is still connected; cancel ``budget`` when it is not."""
    while not budget.cancelled:
        if await request.is_disconnected():
            budget.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
