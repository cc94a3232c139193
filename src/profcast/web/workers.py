"""The page's forecasts run on a fixed pool of threads with a short queue before it; past both, 503.

Each admitted request holds a place from its first byte to its answer, so the memory of the bodies
being read and the threads working are bounded together. Its work runs under a ``WorkBudget``
(decompressed text, CPU seconds) and stops at the next check once its client has left; a request
still waiting for a thread when its client leaves is dropped at once and gives its place back.

A compressed upload may cost up to its whole budget (a gzip bomb is stopped only once its text
passes the limit), so compressed uploads run on one worker at a time: however many arrive, the
other workers stay free for plain uploads (CSV and JSON profiles), and a bomb cannot starve them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor

from profcast.limits import ClientGone, WorkBudget, positive_env, spending

WORKERS_ENV = "PROFCAST_WEB_WORKERS"
DEFAULT_WORKERS = 2  # threads forecasting at once: about the cores of a small machine
QUEUE_ENV = "PROFCAST_WEB_QUEUE"
DEFAULT_QUEUE = 10  # requests waiting for a thread (or still uploading) before the page answers 503
RETRY_AFTER_SECONDS = 2  # a normal forecast takes well under a second once its model is loaded
DISCONNECT_POLL_SECONDS = 0.2
GZIP_MAGIC = b"\x1f\x8b"


def is_compressed(content: bytes) -> bool:
    """Whether an upload is gzip (its text may be far larger than its bytes)."""
    return content[:2] == GZIP_MAGIC


class ForecastWorkers:
    """A bounded pool: ``admit`` a request (False when full: answer 503), ``run`` its work, ``release`` it."""

    def __init__(self, workers: int | None = None, queue: int | None = None):
        self.workers = workers or positive_env(WORKERS_ENV, DEFAULT_WORKERS)
        self.capacity = self.workers + (queue if queue is not None else positive_env(QUEUE_ENV, DEFAULT_QUEUE))
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="profcast-forecast")
        self.admitted = 0  # changed on the event loop's thread only: no lock
        # One worker for compressed uploads when there are two or more; made on first use, in the event loop.
        self._compressed_lane: asyncio.Semaphore | None = None

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

    def lane(self, compressed: bool):
        """What a request waits for before its work is handed to a thread: the compressed lane, or nothing."""
        if not compressed or self.workers < 2:
            return contextlib.nullcontext()
        if self._compressed_lane is None:
            self._compressed_lane = asyncio.Semaphore(1)
        return self._compressed_lane

    async def run(self, request, budget: WorkBudget, work, *args, compressed: bool = False, **kwargs):
        """``work(*args, **kwargs)`` on a worker thread under ``budget``; ClientGone as soon as ``request``'s
        client leaves (the thread stops at its next budget check)."""
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(cancel_when_gone(request, budget, asyncio.current_task()))
        try:
            async with self.lane(compressed):
                return await loop.run_in_executor(
                    self.executor, functools.partial(within, budget, work, *args, **kwargs)
                )
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
