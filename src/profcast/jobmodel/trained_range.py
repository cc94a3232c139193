"""The sizes a job model was trained on, and the refusal of a forecast far outside them.

A regressor or a size what-if fitted on batch sizes 16 to 256 has no data to say what batch size
10^9 does: its answer is an extrapolation dressed as a forecast. At save time the job model's
manifest records the smallest and largest batch size and input size of the training runs
(``trained_range``, plain JSON). A request row whose profiled or what-if size lies more than
``EXTRAPOLATION_FACTOR`` beyond that range (below min/2 or above max*2) is refused with one line
naming the range: an HTTP 400 when served, ``profcast: error:`` from ``src.predict``. A model saved
before this existed has no range and answers as before.

The same holds for the profile itself: the manifest also records the smallest and largest total op
time (µs per step, over the op columns the model reads) of the training anchor runs, and a request
whose profile totals more than ``EXTRAPOLATION_FACTOR`` beyond that is refused alike: a job far
larger or smaller than every job the model learned from.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.regressors.whatif import input_size

EXTRAPOLATION_FACTOR = 2.0  # how far beyond the trained sizes (a ratio) a forecast is still answered
RANGE_KEY = "trained_range"  # manifest key: {"batchsize": [min, max], "input_size": [min, max] | null}
# Request columns checked against each trained size; the first is the profiled size, the second the what-if.
CHECKED = {"batchsize": ("batchsize", "whatif_batchsize"), "input_size": ("input_size", "whatif_input_size")}
WORDS = {"batchsize": "batch size", "input_size": "input size"}
OP_TOTAL = "op_total"  # manifest key beside the sizes: [min, max] total op time (µs) of the training anchor runs
RANGES = (*CHECKED, OP_TOTAL)  # every range the manifest may hold


def trained_range(keys: pd.DataFrame, op_totals=None) -> dict:
    """``{"batchsize": [min, max], "input_size": [min, max], "op_total": [min, max]}`` of the training rows
    (None where unknown); ``op_totals`` are the anchor runs' total op time over the columns the model reads."""
    sizes = {
        "batchsize": pd.to_numeric(keys["batchsize"], errors="coerce")
        if "batchsize" in keys
        else pd.Series(dtype=float),
        "input_size": keys["dataset"].map(input_size) if "dataset" in keys else pd.Series(dtype=float),
    }
    spans = {name: _span(values.to_numpy(dtype=float)) for name, values in sizes.items()}
    spans[OP_TOTAL] = None if op_totals is None else _span(np.asarray(op_totals, dtype=float))
    return spans


def merged_range(ranges) -> dict:
    """One range covering every target's (a job model answers for all its targets)."""
    merged = {}
    for name in RANGES:
        spans = [r[name] for r in ranges if r and r.get(name)]
        merged[name] = [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None
    return merged


def check_in_range(profiles: pd.DataFrame, trained: dict | None) -> None:
    """A ProfcastError naming the first request cell whose size lies beyond the trained range by more than the factor."""
    if not trained:
        return
    for name, columns in CHECKED.items():
        span = trained.get(name)
        if not span:
            continue
        low, high = span[0] / EXTRAPOLATION_FACTOR, span[1] * EXTRAPOLATION_FACTOR
        for column in columns:
            values = _sizes(profiles, column) if column != "input_size" else _input_sizes(profiles)
            with np.errstate(invalid="ignore"):
                # Only sizes that are sizes: 0, negative or text get their own error from the size checks.
                outside = np.flatnonzero(np.isfinite(values) & (values > 0) & ((values < low) | (values > high)))
            if outside.size:
                row = int(outside[0])
                raise ProfcastError(
                    f"column '{column}' row {row} asks for {WORDS[name]} {values[row]:g}, outside what this model can answer: "
                    f"it was trained on {WORDS[name]}s {span[0]:g} to {span[1]:g} and answers from {low:g} to {high:g} "
                    f"({EXTRAPOLATION_FACTOR:g}x beyond); a forecast there would be an extrapolation"
                )


def _span(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values) & (values > 0)]
    return [float(values.min()), float(values.max())] if values.size else None


def _sizes(profiles: pd.DataFrame, column: str) -> np.ndarray:
    """The column as floats, NaN where absent or not a number (bad values get their own error later)."""
    if column not in profiles:
        return np.full(len(profiles), np.nan)
    return pd.to_numeric(profiles[column], errors="coerce").to_numpy(dtype=float)


def _input_sizes(profiles: pd.DataFrame) -> np.ndarray:
    """The profiled input size: the ``input_size`` column, else the number a ``dataset`` name starts with."""
    given = _sizes(profiles, "input_size")
    if "dataset" not in profiles:
        return given
    named = np.array([input_size(d) if isinstance(d, str) else math.nan for d in profiles["dataset"]], dtype=float)
    return np.where(np.isfinite(given), given, named)


def check_op_total_in_range(op_totals, trained: dict | None) -> None:
    """A ProfcastError naming the first request row whose total op time lies beyond the trained range by
    more than the factor (``op_totals``: per request row, over the op columns the model reads)."""
    span = (trained or {}).get(OP_TOTAL)
    if not span:
        return
    low, high = span[0] / EXTRAPOLATION_FACTOR, span[1] * EXTRAPOLATION_FACTOR
    totals = np.asarray(op_totals, dtype=float)
    outside = np.flatnonzero(np.isfinite(totals) & ((totals < low) | (totals > high)))
    if outside.size:
        row = int(outside[0])
        raise ProfcastError(
            f"request row {row}: its op times add up to {totals[row]:.4g} µs per step, outside what this model can "
            f"answer: its training profiles added up to {span[0]:.4g} to {span[1]:.4g} µs and it answers from "
            f"{low:.4g} to {high:.4g} ({EXTRAPOLATION_FACTOR:g}x beyond); a forecast there would be an extrapolation"
        )
