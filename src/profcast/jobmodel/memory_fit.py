"""Does a job fit a target's memory? The anchor's peak memory carried to the target, against the target's device memory.

How memory carries from one device to another is measured, not assumed: the same framework on
another device may allocate differently (cuDNN workspaces, the CPU allocator against CUDA's caching
one). At training, every workload profiled on both the anchor and a target with its peak memory
(``peak_memory_bytes``, written by ``profcast collect``) gives a target/anchor ratio; the target's
carry is their median, and its error is measured holding each network out (the ratio from the
other networks, the error on the held-out one), as the op models are. A forecast's peak is the
anchor's peak times that ratio; it fits when the peak is at most the target's device memory
(``memory_gb`` of conf/instances.yaml or conf/gpus.yaml). A target with no such pairs in the
training data takes the anchor's peak as it is (ratio 1, ``carry_pairs`` 0, said in the answer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.jobmodel.requests import TARGET_INSTANCE
from profcast.limits import shown_bytes
from profcast.schema import PEAK_MEMORY, WORKLOAD_KEYS

FITS = "fits"
MEMORY_MARGIN = "memory_margin_bytes"  # device memory minus the forecast peak: negative does not fit
DEVICE_MEMORY = "device_memory_bytes"
ANSWER_COLUMNS = (PEAK_MEMORY, DEVICE_MEMORY, MEMORY_MARGIN, FITS)
GB = 1e9  # catalogue memory sizes are vendors' gigabytes


def peak_memory_carry(profiles: pd.DataFrame, anchor: str, target: str) -> dict | None:
    """The target's measured carry: ``ratio`` (median target/anchor peak over shared workloads),
    ``pairs``, and ``error_pct`` (median absolute % error of anchor peak x ratio, each network held out),
    or None when no workload has a peak on both."""
    if PEAK_MEMORY not in profiles.columns:
        return None
    peaks = profiles.dropna(subset=[PEAK_MEMORY])
    peaks = peaks[peaks[PEAK_MEMORY] > 0]
    sides = [
        peaks[peaks["instance_name"] == name].groupby(WORKLOAD_KEYS, as_index=False)[PEAK_MEMORY].median()
        for name in (anchor, target)
    ]
    both = sides[0].merge(sides[1], on=WORKLOAD_KEYS, suffixes=("_anchor", "_target"))
    if both.empty:
        return None
    ratios = both[f"{PEAK_MEMORY}_target"] / both[f"{PEAK_MEMORY}_anchor"]
    errors = []
    for network in both["model"].unique():
        held = (both["model"] == network).to_numpy()
        if held.all():  # one network only: nothing to learn the ratio from but itself
            break
        ratio = float(np.median(ratios[~held]))
        forecast = both.loc[held, f"{PEAK_MEMORY}_anchor"] * ratio
        errors += list(
            (forecast - both.loc[held, f"{PEAK_MEMORY}_target"]).abs() / both.loc[held, f"{PEAK_MEMORY}_target"]
        )
    as_is = (both[f"{PEAK_MEMORY}_anchor"] - both[f"{PEAK_MEMORY}_target"]).abs() / both[f"{PEAK_MEMORY}_target"]
    return {
        "ratio": float(np.median(ratios)),
        "pairs": int(len(both)),
        "error_pct": float(np.median(errors) * 100) if errors else None,
        "as_is_error_pct": float(np.median(as_is) * 100),  # taking the anchor's peak unchanged, for comparison
    }


def device_memory_bytes(catalogue: dict, name: str) -> float | None:
    """The device memory of instance ``name`` in bytes (``memory_gb`` in its catalogue entry), or None when not known."""
    entry = catalogue.get(name) or {}
    memory = entry.get("memory_gb")
    return (
        float(memory) * GB if isinstance(memory, (int, float)) and not isinstance(memory, bool) and memory > 0 else None
    )


def memory_record(profiles: pd.DataFrame, anchor: str, targets, catalogue: dict) -> dict | None:
    """What a job model stores about memory: each target's carry and device memory (JSON-safe); None
    when it knows neither for any target (the model then answers no memory columns)."""
    record = {
        "carry": {target: peak_memory_carry(profiles, anchor, target) for target in targets},
        "device_memory_bytes": {target: device_memory_bytes(catalogue, target) for target in targets},
    }
    known = [*record["carry"].values(), *record["device_memory_bytes"].values()]
    return record if any(value is not None for value in known) else None


def fit_columns(anchor_peaks, targets, memory: dict) -> dict[str, np.ndarray]:
    """Per answer row: the forecast peak on its target, the target's device memory, the margin and
    whether it fits (True/False, None when the peak or the device memory is not known)."""
    anchor_peaks = np.asarray(anchor_peaks, dtype=float)
    carry = memory.get("carry") or {}
    device = memory.get("device_memory_bytes") or {}
    ratio = np.array([(carry.get(t) or {}).get("ratio", 1.0) for t in targets], dtype=float)
    capacity = np.array([np.nan if device.get(t) is None else device[t] for t in targets], dtype=float)
    peak = anchor_peaks * ratio
    margin = capacity - peak
    known = np.isfinite(margin)
    fits = np.where(known, margin >= 0, None).astype(object)
    return {PEAK_MEMORY: peak, DEVICE_MEMORY: capacity, MEMORY_MARGIN: margin, FITS: fits}


def add_fit_columns(
    answer: pd.DataFrame, anchor_peaks: np.ndarray, rows: np.ndarray, memory: dict | None
) -> pd.DataFrame:
    """``answer`` with ANSWER_COLUMNS when the request gave a peak memory and the model knows memory; else unchanged."""
    if not memory or not np.isfinite(anchor_peaks).any():
        return answer
    columns = fit_columns(anchor_peaks[rows], answer[TARGET_INSTANCE].to_numpy(), memory)
    for name in ANSWER_COLUMNS:
        answer[name] = columns[name]
    return answer


def json_safe(answer: pd.DataFrame) -> pd.DataFrame:
    """The memory columns with unknown values as None (JSON null), never NaN."""
    for name in (PEAK_MEMORY, DEVICE_MEMORY, MEMORY_MARGIN):
        if name in answer:
            values = answer[name].to_numpy(dtype=float)
            answer[name] = answer[name].astype(object).where(np.isfinite(values), None)
    return answer


def add_ranking_fit(table: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """The ranking (one row per ``instance``) with ``memory`` (words) and ``does_not_fit`` from the
    model's answer; rows the answer says nothing about (the anchor, an older model) read '-'."""
    by_target = {}
    if FITS in predicted and MEMORY_MARGIN in predicted:
        for target, fits, margin in zip(predicted[TARGET_INSTANCE], predicted[FITS], predicted[MEMORY_MARGIN]):
            by_target[target] = (fits, margin)
    words, apart = [], []
    for instance, source in zip(table["instance"], table["source"]):
        fits, margin = by_target.get(instance, (None, None)) if source.startswith("predicted") else (None, None)
        apart.append(fits is False or fits is np.False_)
        if fits is None or margin is None or not np.isfinite(float(margin)):
            words.append("-")
        elif apart[-1]:
            words.append(f"NO: {shown_bytes(int(-float(margin)))} short")
        else:
            words.append(f"fits, {shown_bytes(int(float(margin)))} free")
    return table.assign(memory=words, does_not_fit=apart)
