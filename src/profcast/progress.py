"""Progress of long work: a tqdm bar on a terminal, one log line per step elsewhere.

A job on real data runs for many minutes; a user at a terminal sees a bar per target and per
fold with a time estimate, while a log file or CI output gets plain lines instead of bar redraws.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import time
from contextlib import nullcontext

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)


def attached_to_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr, where bars go) is an interactive terminal this process owns.

    A worker process (a parallel sweep's job, a pool's fit) shares its parent's terminal with its
    siblings: their bars would overwrite each other, so workers write log lines instead.
    """
    if multiprocessing.parent_process() is not None:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def track(items, description: str, level: int = 0, stream=None, total: int | None = None):
    """Yield ``items`` while showing progress: a bar (nested at ``level``) or a log line per item done.

    Each log line says how many are done, the time spent and an estimate of the time left. A
    generator keeps yielding as its items come when ``total`` says how many there are.
    """
    if total is None:
        items = items if hasattr(items, "__len__") else list(items)
        total = len(items)
    if attached_to_terminal(stream):
        yield from tqdm(
            items,
            desc=description,
            total=total,
            position=level,
            leave=level == 0,
            file=sys.stderr if stream is None else stream,
            dynamic_ncols=True,
        )
        return
    started = time.monotonic()
    for number, item in enumerate(items, start=1):
        yield item
        elapsed = time.monotonic() - started
        log.info(
            "%s: %d/%d done, %s elapsed, about %s left",
            description,
            number,
            total,
            duration(elapsed),
            duration(elapsed / number * (total - number)),
        )


def logging_beside_bars(stream=None):
    """A context in which log records print above the bars instead of through them (terminal only)."""
    if not attached_to_terminal(stream):
        return nullcontext()

    return logging_redirect_tqdm()


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
