"""The step-level gap: how far a measured step lies from its measured calls summed, per call of the step.

NeuSight times every FX node on its own; the step runs them back to back. The two disagree by an
amount that grows with the number of calls, not with their work: on H100 the step is 7-11 µs *per
call* shorter than its calls summed (each timed call pays a launch and synchronisation the step
overlaps), on the A100 80GB and L4 it is longer (host work and un-timed ops between the calls; 1692
to 4459 calls a training step). The per-call model adds ``gap * calls`` to the summed forecast, the
gap being the median over the fitted GPUs' runs of (step - measured calls summed) / calls: a GPU's
figures do not tell its gap, so a new GPU takes the fitted GPUs' typical one (docs/new-gpu.md). A
PyTorch trace's calls are its outermost operators, each counted as one call like an FX node.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.ingest.neusight_calls import RUN_KEYS as CALL_RUN_KEYS

RUN_KEYS = [key for key in CALL_RUN_KEYS if key != "gpu"]  # a NeuSight run, on one GPU (per_call uses these)


def gaps_per_call_us(calls: pd.DataFrame, steps: pd.DataFrame) -> pd.Series:
    """Per measured run (``gpu`` and run keys): (step time - its measured calls summed) / its calls, in µs."""
    keys = ["gpu", *RUN_KEYS]
    summed = (
        calls.assign(total_us=calls["time_us"] * calls["repeat"])
        .groupby(keys, as_index=False)[["total_us", "repeat"]]
        .sum()
        .merge(steps[[*keys, "e2e_us"]], on=keys)
    )
    gaps = (summed["e2e_us"] - summed["total_us"]) / summed["repeat"]
    return pd.Series(gaps.to_numpy(dtype=float), index=pd.MultiIndex.from_frame(summed[keys]), name="gap_us")


def median_gap_per_call_us(calls: pd.DataFrame, steps: pd.DataFrame) -> float:
    """The median per-call gap over every run that has both its calls and its step time; 0 when none has."""
    gaps = gaps_per_call_us(calls, steps)
    return float(np.median(gaps)) if len(gaps) else 0.0


def with_step_gap(step_us: np.ndarray, calls_per_step: np.ndarray, gap_us: float) -> np.ndarray:
    """Forecast step times plus ``gap_us`` per call; never below half the calls' sum (a guard for tiny steps)."""
    step_us = np.asarray(step_us, dtype=float)
    return np.maximum(step_us + gap_us * np.asarray(calls_per_step, dtype=float), step_us / 2)
