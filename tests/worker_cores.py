"""Each pytest-xdist worker gets its share of the cores: N workers on C cores run C // N threads each.

Without a share, every worker, and every command, sweep and server it starts, sizes its OpenMP/BLAS pools and a
job's fit processes (``n_jobs: auto``, profcast.pipeline.parallel) to the whole machine: two workers on two cores
then run four or more busy threads, and each test waits on the other worker's. tests/conftest.py calls this before
numpy loads; the processes a test starts inherit the share. A share the user set already (``OMP_NUM_THREADS=...``)
is kept. docs/testing.md has the measured difference.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_COUNT = "PYTEST_XDIST_WORKER_COUNT"  # set by pytest-xdist in each worker before conftest is imported


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: what a container or `taskset` gives it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share_the_cores_between_workers(environ=os.environ, cores: int | None = None) -> int | None:
    """In a worker of a parallel run, cap the thread variables at this worker's share; the share, or None."""
    workers = int(environ.get(WORKER_COUNT, "0") or 0)
    if workers <= 1:
        return None
    share = max((cores or usable_cores()) // workers, 1)
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(share))
    return share
