"""Check a forecast request (anchor profiles) and name the served model's request and answer columns.

A request MLflow can parse but that makes no sense (no known op column, a negative/NaN/infinite
time, an unknown target) raises ProfcastError naming the column and row; the job model turns it
into MlflowException(INVALID_PARAMETER_VALUE), which the scoring server answers with HTTP 400,
and the CLI prints it as one line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.tables import BAD_NUMBER_WORDING, parse_numbers, shown_value
from profcast.limits import MAX_OP_TIME_US, value_limit, value_rule
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY

TRAINED_ON = "trained_on"  # output column: the training data's description, kind and fingerprint
TARGET_INSTANCE = "target_instance"  # optional request column: predict for this target only
INPUT_ROW = "input_row"  # output column: which request row a prediction belongs to
PREDICTED_TOTAL = "predicted_total"  # output column: sum of the predicted op vector (us)
# Output column of a model with a target nobody measured: False on its rows (forecast from its figures only).
TARGET_MEASURED = "target_measured"
# Columns of a training-table row that describe the run but are not op times; accepted and unused.
DESCRIPTIVE_COLUMNS = {
    "exp_name": "string",
    "instance_name": "string",
    "dataset": "string",
    "model": "string",
    "optimizer": "string",
    "batchsize": "long",
    "epoch_latency": "double",
}
# Optional request columns of a what-if and an epoch time (docs/whatif.md); numbers, null for "as profiled".
WHATIF_BATCHSIZE = "whatif_batchsize"  # forecast at this batch size instead of the profiled 'batchsize'
WHATIF_INPUT_SIZE = "whatif_input_size"  # forecast at this input size instead of the profiled one
INPUT_SIZE = "input_size"  # the profiled input size, when the 'dataset' name does not carry it (e.g. 64dataset)
SAMPLES_PER_EPOCH = "samples_per_epoch"  # epoch time = ceil(samples / batch size) x step time
SIZE_COLUMNS = (WHATIF_BATCHSIZE, WHATIF_INPUT_SIZE, INPUT_SIZE, SAMPLES_PER_EPOCH)
EPOCH_LATENCY = "epoch_latency"  # output column: predicted seconds per epoch on the target (null when unknowable)
# A request's missing cell most often comes from records that list different ops.
MISSING_IN_REQUEST = (
    "is missing (null/NaN); give 0 for an op that did not run "
    "(in dataframe_records, every record must list the same op columns)"
)


def _bad_request(message: str) -> ProfcastError:
    return ProfcastError(message)


def unknown_columns(columns, op_columns: list[str]) -> list[str]:
    """Request columns that are neither a trained op nor a column the model accepts and ignores."""
    accepted = set(op_columns) | set(DESCRIPTIVE_COLUMNS) | {BATCH_LATENCY, PEAK_MEMORY, TARGET_INSTANCE, *SIZE_COLUMNS}
    return [column for column in columns if column not in accepted]


def model_op_columns(input_schema) -> list[str]:
    """The op columns a logged job model was trained on, read from its input signature."""
    reserved = set(DESCRIPTIVE_COLUMNS) | {BATCH_LATENCY, PEAK_MEMORY, TARGET_INSTANCE, *SIZE_COLUMNS}
    return [name for name in input_schema.input_names() if name not in reserved]


def checked_anchor_profiles(profiles: pd.DataFrame, op_columns: list[str], anchor: str) -> pd.DataFrame:
    """The request's op columns (+ anchor batch_latency) as floats; a bad value is a 400 naming it."""
    profiles = profiles.reset_index(drop=True)
    present = [column for column in op_columns if column in profiles.columns]
    if not present:
        raise _bad_request(
            f"no known op column in the request; this model was trained on {len(op_columns)} op columns "
            f"such as {', '.join(op_columns[:5])} (columns never seen in training are ignored)"
        )
    if len(profiles) == 0:
        raise _bad_request("the request holds no profile rows")
    if "instance_name" in profiles.columns:
        other = profiles["instance_name"].dropna().astype(str)
        other = other[other != anchor]
        if len(other):
            raise _bad_request(
                f"column 'instance_name' row {other.index[0]} is {other.iloc[0]!r}, but this model predicts "
                f"from profiles taken on {anchor!r}; use the model registered for that anchor"
            )
    try:
        times = profiles[present].to_numpy(dtype=float)  # one conversion for the whole block: the fast path
    except (TypeError, ValueError):
        times = None
    if times is None or not (np.isfinite(times) & (times >= 0) & (times <= MAX_OP_TIME_US)).all():
        for column in present:  # find the first bad cell, column by column, to name it
            _checked_column(profiles[column], column, allow_missing=False)
    checked = pd.DataFrame(times, columns=present)
    if BATCH_LATENCY in profiles.columns:
        checked[BATCH_LATENCY] = _checked_column(profiles[BATCH_LATENCY], BATCH_LATENCY, allow_missing=True).to_numpy()
    return checked


def checked_peak_memory(profiles: pd.DataFrame) -> np.ndarray:
    """Per request row, the anchor's peak memory in bytes (NaN where not given); a bad value is a 400 naming it."""
    if PEAK_MEMORY not in profiles.columns:
        return np.full(len(profiles), np.nan)
    return _checked_column(profiles[PEAK_MEMORY].reset_index(drop=True), PEAK_MEMORY, allow_missing=True).to_numpy(
        float
    )


def _checked_column(values: pd.Series, column: str, allow_missing: bool) -> pd.Series:
    numbers, bad = parse_numbers(values, allow_missing, upper=value_limit(column))
    if bad:
        row, kind = bad
        what = MISSING_IN_REQUEST if kind == "missing" else BAD_NUMBER_WORDING[kind]
        rule = value_rule(column) + (
            " (an op that did not run is 0 or left out)" if column not in (BATCH_LATENCY, PEAK_MEMORY) else ""
        )
        raise _bad_request(f"column '{column}' row {row} value {shown_value(values.iloc[row])} {what}; {rule}")
    return numbers


def requested_targets(profiles: pd.DataFrame, targets: list[str]) -> pd.Series:
    """Per request row, the one target asked for, or NaN for all targets."""
    if TARGET_INSTANCE not in profiles.columns:
        return pd.Series(np.nan, index=range(len(profiles)), dtype=object)
    wanted = profiles[TARGET_INSTANCE].reset_index(drop=True)
    wanted = wanted.where(wanted.notna() & (wanted.astype(str) != ""), None).astype(object)
    unknown = wanted[wanted.notna() & ~wanted.isin(targets)]
    if len(unknown):
        raise _bad_request(
            f"column '{TARGET_INSTANCE}' row {unknown.index[0]} asks for {unknown.iloc[0]!r}, which this model does "
            f"not predict; known target instances: {', '.join(targets)} (leave it out for all)"
        )
    return wanted
