"""Column names shared by every module (run keys, workload keys, latencies) and how to split a profile frame by them."""

import numpy as np
import pandas as pd

# One profiled run is identified by these columns.
RUN_KEYS = ["exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize"]
# One workload (what was trained, independent of where and which repetition).
WORKLOAD_KEYS = ["dataset", "model", "optimizer", "batchsize"]
# Measured step/epoch times in seconds; optional in a profile table.
LATENCY_COLUMNS = ["batch_latency", "epoch_latency"]
BATCH_LATENCY = "batch_latency"
# Peak memory of one training step in bytes (profcast.ingest.trace_memory); optional, never an op
# nor a feature: it says whether a job fits a device (profcast.jobmodel.memory_fit).
PEAK_MEMORY = "peak_memory_bytes"
# 1 when the suite flagged the run's measurement as noisy (a busy machine or unsteady steps,
# profcast.collect.quality), 0 when it was steady, empty when unknown; never an op nor a feature.
NOISY_MEASUREMENT = "noisy_measurement"
# Measured columns a profile table may carry beside its op times.
MEASURED_COLUMNS = LATENCY_COLUMNS + [PEAK_MEMORY, NOISY_MEASUREMENT]


def op_columns(columns) -> list[str]:
    """The op-time columns of a profile table: everything that is not a key, a latency or the peak memory."""
    reserved = set(RUN_KEYS) | set(MEASURED_COLUMNS)
    return [c for c in columns if c not in reserved]


def op_part(profile: pd.DataFrame) -> pd.DataFrame:
    """The op columns of a profile frame, without batch_latency and the peak memory."""
    return profile.drop(columns=[BATCH_LATENCY, PEAK_MEMORY], errors="ignore")


def aligned_ops(profile: pd.DataFrame, op_columns: list[str]) -> np.ndarray:
    """Reorder a profile to the trained op columns; ops the profile lacks ran 0 us."""
    return profile.reindex(columns=op_columns, fill_value=0.0).to_numpy(dtype=float)


def as_profile(profile) -> pd.DataFrame:
    """A profile frame; a bare array's columns are named op0, op1, ... (scikit-learn's checks pass arrays)."""
    if isinstance(profile, pd.DataFrame):
        return profile
    values = np.asarray(profile, dtype=float)
    values = values.reshape(len(values), -1)
    return pd.DataFrame(values, columns=[f"op{i}" for i in range(values.shape[1])])


def union_columns(column_lists) -> list[str]:
    """Every column of the lists, once, in first-seen order."""
    seen: dict[str, None] = {}
    for columns in column_lists:
        seen.update(dict.fromkeys(columns))
    return list(seen)
