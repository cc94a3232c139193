"""Run one served prediction on the calling thread only: OpenMP pools limited to one thread for its duration.

scikit-learn's kNN search (and other Cython kernels) starts an OpenMP parallel region on every
call, with as many threads as the machine has cores. For the few rows of a served request the
fork/join costs more than the work, and on a busy machine it costs far more: waiting for a second
core made a 1-row answer of a 9-target kNN job model 6x slower (32 ms against 5 ms, measured on 2
shared cores). ``n_jobs=1`` (``job_model.use_one_thread``) does not reach these pools.

Only OpenMP is limited: its thread count is a per-thread setting, so concurrent requests (the
scoring server predicts in worker threads) cannot change each other's; BLAS's is process-wide.
"""

from __future__ import annotations

from threadpoolctl import ThreadpoolController


class OpenMPLimit:
    """``with limit():`` runs the block with OpenMP at one thread, the calling thread's setting restored after."""

    def __init__(self):
        self._openmp = None  # found on first use, once the model's native libraries are loaded

    def __call__(self):
        if self._openmp is None:
            # Listing the loaded libraries takes milliseconds: once, not per request.
            self._openmp = ThreadpoolController().select(user_api="openmp")
        return self._openmp.limit(limits=1)
