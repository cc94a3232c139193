"""PROFET's batch-size scaler, re-implemented as the baseline the size what-if is measured against.

PROFET fits, per instance and across models, one second-order curve of min-max-normalised latency
over batch size: f(b) = (L(b) - L(b_min)) / (L(b_max) - L(b_min)), and scales it between the
latencies at the smallest and largest batch size. PROFET gets those two latencies from profiles at
both ends; from one profile at b we know L(b) only, so the span L(b_max) / L(b_min) is the median
span of the training jobs on the instance, and L(b_min) follows from L(b) = L(b_min)(1 + (span - 1) f(b)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.schema import BATCH_LATENCY


class ProfetBatchScaler:
    """Latency at batch size b' from the latency at b, via PROFET's normalised quadratic.

    Attributes
    ----------
    coefficients_ : ndarray
        The quadratic f(b) (numpy.polyval order), fitted on jobs profiled at the instance's smallest
        and largest batch size (every job with two sizes or more when none spans the grid).
    span_ : float
        Median L(b_max) / L(b_min) over those jobs.
    """

    def fit(self, workloads: pd.DataFrame, job_keys=("dataset", "model", "optimizer")) -> "ProfetBatchScaler":
        """`workloads`: one row per workload of the instance, with batchsize and batch_latency."""
        runs = workloads[list(job_keys) + ["batchsize", BATCH_LATENCY]].dropna()
        smallest, largest = runs["batchsize"].min(), runs["batchsize"].max()
        jobs = [job for _, job in runs.groupby(list(job_keys)) if job["batchsize"].nunique() >= 2]
        spanning = [job for job in jobs if job["batchsize"].min() == smallest and job["batchsize"].max() == largest]
        jobs = spanning or jobs
        if not jobs:
            raise ValueError("no job was profiled at two batch sizes; PROFET's scaler has no curve to fit")
        sizes, normalised, spans = [], [], []
        for job in jobs:
            job = job.groupby("batchsize")[BATCH_LATENCY].median()
            low, high = job.iloc[0], job.iloc[-1]
            if high <= low:
                continue  # a job that does not slow down with batch size has no normalisable curve
            sizes.append(job.index.to_numpy(float))
            normalised.append(((job - low) / (high - low)).to_numpy())
            spans.append(high / low)
        if not spans:
            raise ValueError("no job's latency grows with batch size; PROFET's scaler has no curve to fit")
        self.coefficients_ = np.polyfit(np.concatenate(sizes), np.concatenate(normalised), 2)
        self.span_ = float(np.median(spans))
        return self

    def log_scale(self, batch, new_batch) -> np.ndarray:
        """log(L(b') / L(b)) per row."""

        def curve(b):
            return 1 + (self.span_ - 1) * np.clip(np.polyval(self.coefficients_, np.asarray(b, dtype=float)), 0, None)

        return np.log(curve(new_batch) / curve(batch))
