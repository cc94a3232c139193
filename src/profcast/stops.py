"""Stops: SIGINT and SIGTERM turned into exceptions a command can end its work on, and the exit codes they give.

Ctrl-C exits 130 and SIGTERM 143, each with one line on stderr and no traceback (``profcast.cli``).
A training job also ends its open MLflow runs KILLED (``profcast.tracking.run_endings``).
"""

from __future__ import annotations

import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up ends the runs."""


_signals_seen: list[int] = []


def signals_seen() -> list[int]:
    """The stop signals this process received, oldest first."""
    return _signals_seen


# Modules a stop must not interrupt: an exception raised inside a store write leaves SQLite locked.
STORE_MODULES = ("sqlalchemy", "sqlite3", "alembic")
# Nor torch's profiler bookkeeping: a KeyboardInterrupt raised inside ``prof.step()`` (between
# ``_record_function_enter_new`` and keeping its handle) or inside ``stop()``/the trace export leaves
# the profiler half-stopped; its ``__exit__`` then fails ("Expected record to be set") and a
# RecordFunction never closed can crash the interpreter at exit (SIGSEGV). Held back, the stop comes
# at the next line of the caller's own code, inside the profiled step or after the export.
PROFILER_MODULES = ("torch.profiler", "torch.autograd.profiler")
UNINTERRUPTIBLE_MODULES = STORE_MODULES + PROFILER_MODULES
RETRY_SECONDS = 0.05


def _on_signal(number, frame) -> None:
    _signals_seen.append(number)
    _raise_when_safe(frame)


def _raise_when_safe(frame) -> None:
    """Raise the stop now, or, inside a store write or the profiler's bookkeeping, a moment later (SIGALRM) once it is done."""
    if _inside_store_code(frame):
        signal.signal(signal.SIGALRM, lambda number, later: _raise_when_safe(later))
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    raise Terminated() if _signals_seen[-1] == signal.SIGTERM else KeyboardInterrupt()


def _inside_store_code(frame) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(UNINTERRUPTIBLE_MODULES):
            return True
        frame = frame.f_back
    return False


def install_stop_handlers() -> dict:
    """Turn SIGINT and SIGTERM into exceptions (main thread only), so runs can be ended before exit.

    Returns the handlers replaced, for ``restore_handlers``.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.signal(number, _on_signal) for number in (signal.SIGINT, signal.SIGTERM)}


def restore_handlers(previous: dict) -> None:
    """Put back the handlers ``install_stop_handlers`` replaced."""
    for number, handler in previous.items():
        signal.signal(number, handler)


def stop_status() -> str:
    """KILLED once a stop signal arrived in this process, else FAILED."""
    return "KILLED" if _signals_seen else "FAILED"


RUNS_KILLED_NOTE = "; open runs ended KILLED"  # how a stopped training command ends its runs


def stop_exit_code(stop: KeyboardInterrupt, note: str = RUNS_KILLED_NOTE) -> int:
    """Say on stderr how a stop ended the command; its exit code (130 Ctrl-C, 143 SIGTERM)."""
    terminated = isinstance(stop, Terminated)
    print(f"profcast: {'terminated' if terminated else 'interrupted'}{note}", file=sys.stderr)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
