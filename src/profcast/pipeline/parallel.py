"""Run a job's independent fits in a process pool without oversubscribing the machine's cores.

A job's fits (one per fold, plus the refit on every row) are independent, so they can run in
``n_jobs`` worker processes. Each worker then gets ``cores // processes`` threads for OpenMP/BLAS
(HistGradientBoosting, linear algebra) and for joblib's own thread pools (a forest's or KNN's
``n_jobs=-1`` resolves to that many threads, not to every core), so processes x threads never
exceeds the cores. The results do not depend on where a fit ran: every estimator is seeded.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Sequence

import joblib
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits

from profcast.errors import ProfcastError
from profcast.progress import track

log = logging.getLogger(__name__)

# A first fit quicker than this runs the rest in-process too: starting worker processes
# (each imports scikit-learn and pandas) would cost more than it saves.
WORTH_A_POOL_SECONDS = 1.0
THREAD_ENV = "OMP_NUM_THREADS"  # a parent that limited this process's threads (user, launcher) caps "auto"
# Kinds of fit (see run_fits' ``kind``) whose first fit showed a pool pays: later calls skip the probe.
_POOL_PAYS: set = set()


def available_cores() -> int:
    """Cores this process may use: CPU affinity, cgroup quota and LOKY_MAX_CPU_COUNT, capped by OMP_NUM_THREADS."""
    cores = joblib.cpu_count()  # looked up at call time: tests and launchers may patch it
    limit = os.environ.get(THREAD_ENV, "")
    if limit.isdigit() and int(limit) >= 1:
        cores = min(cores, int(limit))
    return max(cores, 1)


def resolve_n_jobs(setting) -> int:
    """The config's ``n_jobs`` as a number of processes: ``auto`` (or -1) = the available cores, else an integer >= 1."""
    cores = available_cores()
    if setting is None or str(setting).strip().lower() == "auto":
        return cores
    try:
        number = int(setting)
    except (TypeError, ValueError):
        number = 0
    if number == -1:
        return cores
    if number < 1 or str(number) != str(setting).strip():
        raise ProfcastError(f"n_jobs must be 'auto', -1 or a whole number >= 1; got {setting!r}")
    return number


def threads_per_process(processes: int) -> int:
    """Threads each of ``processes`` workers may use so that processes x threads <= cores."""
    return max(available_cores() // max(processes, 1), 1)


def run_fits(fit: Callable, tasks: Sequence[tuple], n_jobs: int, progress: str | None = None, kind=None) -> list:
    """``[fit(*task) for task in tasks]``, in up to ``n_jobs`` processes when that pays.

    The first task runs in this process with the threads one worker would get; if it took under
    ``WORTH_A_POOL_SECONDS`` the rest follow it here (with every core's threads), else they go to
    a process pool. ``progress`` names a progress bar (or log lines) counting the fits done.
    ``kind`` (hashable) names fits that take alike, e.g. one regressor on as many rows: once a
    probe of that kind sent its rest to a pool, later calls send every task there at once (the
    probe would leave the other cores idle for one fit per call). Where a fit runs never changes it.
    """

    done = (
        (lambda results, count: track(results, progress, level=1, total=count))
        if progress
        else (lambda results, count: results)
    )
    processes = min(n_jobs, len(tasks))
    threads = threads_per_process(processes)
    started = time.perf_counter()
    probed = processes <= 1 or kind is None or kind not in _POOL_PAYS
    results = [limited_threads(fit, threads, tasks[0])] if tasks and probed else []
    rest = list(tasks[1:] if probed else tasks)
    if not rest:
        return results
    if probed and (processes <= 1 or time.perf_counter() - started < WORTH_A_POOL_SECONDS):
        every_core = threads_per_process(1)
        return results + list(done((limited_threads(fit, every_core, task) for task in rest), len(rest)))
    if kind is not None:
        _POOL_PAYS.add(kind)

    processes = min(processes, len(rest))
    threads = threads_per_process(processes)
    log.debug("%d fits in %d processes x %d threads", len(rest), processes, threads)
    with parallel_config(backend="loky", inner_max_num_threads=threads):
        fits = Parallel(n_jobs=processes, return_as="generator")(
            delayed(limited_threads)(fit, threads, task) for task in rest
        )
        results += list(done(fits, len(rest)))
    return results


def limited_threads(fit: Callable, threads: int, task: tuple):
    """``fit(*task)`` with OpenMP/BLAS and joblib's thread pools held to ``threads``."""

    previous = os.environ.get("LOKY_MAX_CPU_COUNT")
    os.environ["LOKY_MAX_CPU_COUNT"] = str(threads)  # what n_jobs=-1 resolves to inside the fit
    try:
        with threadpool_limits(limits=threads):
            return fit(*task)
    finally:
        if previous is None:
            os.environ.pop("LOKY_MAX_CPU_COUNT", None)
        else:
            os.environ["LOKY_MAX_CPU_COUNT"] = previous
