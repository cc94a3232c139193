"""The served answer's what-if, interval and epoch-time columns, added after the plain forecast (docs/whatif.md).

A request row with ``whatif_batchsize`` / ``whatif_input_size`` gets its op vector, step time and
total scaled by the target's SizeWhatIf to that size; every other row keeps the plain forecast's
values bit for bit. Then every row gets ``<quantity>_low`` / ``_high`` (10% and 90% quantiles:
the plain interval, or for a moved row the what-if interval of its size move) and, for a model
that predicts step time, ``epoch_latency`` (+ ``_low`` / ``_high``), null when the steps per
epoch cannot be known from the request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.tables import shown_value
from profcast.jobmodel.requests import (
    EPOCH_LATENCY,
    INPUT_ROW,
    INPUT_SIZE,
    PREDICTED_TOTAL,
    SAMPLES_PER_EPOCH,
    TARGET_INSTANCE,
    WHATIF_BATCHSIZE,
    WHATIF_INPUT_SIZE,
)
from profcast.regressors.whatif import input_size, size_move
from profcast.schema import BATCH_LATENCY

WHAT_SIZE = {WHATIF_BATCHSIZE: ("batchsize", "batch size"), WHATIF_INPUT_SIZE: ("input_size", "input size")}


def added_columns(answer: pd.DataFrame) -> list[str]:
    """The columns this module adds that may be null (JSON carries them as null, not NaN)."""
    named = [
        f"{quantity}_{end}" for quantity in (BATCH_LATENCY, PREDICTED_TOTAL, EPOCH_LATENCY) for end in ("low", "high")
    ]
    return [column for column in [*named, EPOCH_LATENCY] if column in answer]


def add_forecast_columns(
    answer: pd.DataFrame, profiles: pd.DataFrame, anchor_profiles: pd.DataFrame, model
) -> pd.DataFrame:
    """``answer`` (one row per request row and target) with what-ifs applied and interval and epoch columns.

    ``model`` is the JobModel (its ``extras``, ``interval_quantity``, ``targets``, ``output_op_columns``).
    A model without extras answers exactly as before, and refuses a what-if.
    """
    asked = [column for column in WHAT_SIZE if column in profiles and profiles[column].notna().any()]
    extras = getattr(model, "extras", None) or {}
    for column in asked:
        key, words = WHAT_SIZE[column]
        if not extras or not all(part.get("whatif") is not None and part["moves"].get(key) for part in extras.values()):
            unmeasured = ", ".join(getattr(model, "unmeasured", None) or {})
            why = (
                f"{unmeasured} was never measured: its size growth would be learned from forecasts"
                if unmeasured
                else f"its data had one {words} per job, or whatif=none"
            )
            raise ProfcastError(
                f"column '{column}' asks for a what-if at another {words}, but this model was trained without one "
                f"({why}); leave the column out"
            )
    if not extras:
        return answer
    sizes = request_sizes(profiles, anchor_profiles)
    rows, targets = answer[INPUT_ROW].to_numpy(), answer[TARGET_INSTANCE].to_numpy()
    moved = sizes["moved"].to_numpy()[rows]
    if moved.any():
        _apply_whatifs(answer, anchor_profiles, sizes, rows, targets, moved, model)
    quantity = model.interval_quantity
    if quantity in answer:
        strata = size_move(*(sizes[c].to_numpy()[rows] for c in ("batch", "size", "new_batch", "new_size")))
        low, high = _bounds(answer[quantity].to_numpy(float), targets, moved, strata, extras)
        answer[f"{quantity}_low"], answer[f"{quantity}_high"] = low, high
    if BATCH_LATENCY in answer:
        steps = sizes["steps"].to_numpy()[rows]
        answer[EPOCH_LATENCY] = steps * answer[BATCH_LATENCY].to_numpy(float)
        if quantity == BATCH_LATENCY:
            answer[f"{EPOCH_LATENCY}_low"], answer[f"{EPOCH_LATENCY}_high"] = steps * low, steps * high
    return answer


def request_sizes(profiles: pd.DataFrame, anchor_profiles: pd.DataFrame) -> pd.DataFrame:
    """Per request row: profiled and wanted batch and input size, dataset names for SizeWhatIf, moved, steps per epoch."""
    n = len(profiles)
    batch = _positive(profiles, "batchsize", integer=True)
    new_batch = _positive(profiles, WHATIF_BATCHSIZE, integer=True)
    given_size = _positive(profiles, INPUT_SIZE, integer=True)
    new_size = _positive(profiles, WHATIF_INPUT_SIZE, integer=True)
    samples = _positive(profiles, SAMPLES_PER_EPOCH, integer=False)
    datasets = (
        profiles["dataset"].astype(object).where(profiles["dataset"].notna(), "").astype(str).to_numpy()
        if "dataset" in profiles
        else np.full(n, "")
    )
    size = np.where(np.isfinite(given_size), given_size, [input_size(d) for d in datasets])
    _require(new_batch, batch, WHATIF_BATCHSIZE, "the profiled batch size: add a 'batchsize' column")
    _require(
        new_size,
        size,
        WHATIF_INPUT_SIZE,
        f"the profiled input size: add an '{INPUT_SIZE}' column (or a 'dataset' name carrying it, e.g. 64dataset)",
    )
    new_batch = np.where(np.isfinite(new_batch), new_batch, batch)
    moved_size = np.isfinite(new_size) & (new_size != size)
    new_size = np.where(np.isfinite(new_size), new_size, size)
    moved = (new_batch != batch) & np.isfinite(batch) | moved_size
    # SizeWhatIf reads the input size from a dataset name's leading number, as it did in training.
    dataset = np.where(np.isfinite(given_size), [f"{s:g}" for s in given_size], datasets)
    new_dataset = np.where(moved_size, [f"{s:g}" for s in new_size], dataset)
    return pd.DataFrame(
        {
            "batch": batch,
            "size": size,
            "new_batch": new_batch,
            "new_size": new_size,
            "dataset": dataset,
            "new_dataset": new_dataset,
            "moved": moved,
            "steps": _steps(profiles, anchor_profiles, batch, new_batch, samples),
        }
    )


def _steps(profiles, anchor_profiles, batch, new_batch, samples) -> np.ndarray:
    """Steps per epoch at the forecast batch size: ceil(samples_per_epoch / batch), else the anchor's
    measured epoch_latency / batch_latency (x b/b' under a batch what-if), else NaN (never guessed)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.ceil(samples / new_batch)
        epoch = (
            pd.to_numeric(profiles["epoch_latency"], errors="coerce").to_numpy(float)
            if "epoch_latency" in profiles
            else np.full(len(profiles), np.nan)
        )
        latency = (
            anchor_profiles[BATCH_LATENCY].to_numpy(float)
            if BATCH_LATENCY in anchor_profiles
            else np.full(len(profiles), np.nan)
        )
        measured = np.where((epoch > 0) & (latency > 0) & np.isfinite(epoch), epoch / latency, np.nan)
        moved = (
            np.isfinite(batch) & np.isfinite(new_batch) & (new_batch != batch)
        )  # NaN != NaN: no batch size is no move
        measured = np.where(moved, measured * batch / new_batch, measured)
    return np.where(np.isfinite(samples), steps, measured)


def _positive(profiles: pd.DataFrame, column: str, integer: bool) -> np.ndarray:
    """The column as floats (NaN where null or absent); a non-numeric, non-positive or fractional value is a 400."""
    if column not in profiles:
        return np.full(len(profiles), np.nan)
    raw = profiles[column]
    blank = raw.isna() | (raw.astype(str).str.strip() == "")
    values = pd.to_numeric(raw.where(~blank, np.nan), errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(values) & (values > 0) & ((values % 1 == 0) if integer else True)
    bad = np.flatnonzero(~blank.to_numpy() & ~good)
    if bad.size:
        row = int(bad[0])
        wanted = "a positive integer" if integer else "a positive number"
        raise ProfcastError(
            f"column '{column}' row {row} value {shown_value(raw.iloc[row])} is not {wanted}; "
            "leave it empty (null) for the profiled size"
        )
    return np.where(blank.to_numpy(), np.nan, values)


def _require(wanted: np.ndarray, profiled: np.ndarray, column: str, what: str) -> None:
    missing = np.flatnonzero(np.isfinite(wanted) & ~np.isfinite(profiled))
    if missing.size:
        raise ProfcastError(f"column '{column}' row {int(missing[0])} asks for a what-if, which needs {what}")


def _apply_whatifs(answer, anchor_profiles, sizes, rows, targets, moved, model) -> None:
    """Scale the moved rows' op vector, step time and total by each target's SizeWhatIf, in place."""
    position = {column: number for number, column in enumerate(model.output_op_columns)}
    for target in model.targets:
        chosen = np.flatnonzero(moved & (targets == target))
        if chosen.size == 0:
            continue
        whatif = model.extras[target]["whatif"]
        request_rows = rows[chosen]
        anchor = anchor_profiles.iloc[request_rows].reset_index(drop=True)
        asked = [sizes[c].to_numpy()[request_rows] for c in ("batch", "dataset", "new_batch", "new_dataset")]
        if BATCH_LATENCY in answer:  # no step-time growth model: unknown at the new size (null), never the old value
            latency = answer[BATCH_LATENCY].to_numpy(float)[chosen]
            scale = np.exp(whatif.log_scale(anchor, *asked)) if whatif.latency_model_ is not None else np.nan
            answer.iloc[chosen, answer.columns.get_loc(BATCH_LATENCY)] = latency * scale
        op_scale = whatif.op_log_scale(anchor, *asked)
        ops = answer[model.output_op_columns].to_numpy(float)[chosen]
        for number, column in enumerate(whatif.op_columns_):
            if column in position:
                ops[:, position[column]] *= np.exp(op_scale[:, number])
        answer.iloc[chosen, [answer.columns.get_loc(c) for c in model.output_op_columns]] = ops
        answer.iloc[chosen, answer.columns.get_loc(PREDICTED_TOTAL)] = ops.sum(axis=1)


def _bounds(values, targets, moved, strata, extras) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (low, high): its target's plain interval, or its what-if interval for a moved row (NaN when none)."""
    low, high = np.full(len(values), np.nan), np.full(len(values), np.nan)
    for target, part in extras.items():
        for rows, interval in (
            ((targets == target) & ~moved, part.get("interval")),
            ((targets == target) & moved, part.get("whatif_interval")),
        ):
            if interval is not None and rows.any():
                low[rows], high[rows] = interval.bounds(values[rows], strata[rows])
    return low, high
