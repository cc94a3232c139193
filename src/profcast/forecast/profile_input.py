"""Read the user's one profile (a tf_stats export, a training-table CSV row or a JSON object) for a forecast."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.csv_text import check_csv_header
from profcast.ingest.profile_files import profile_kind, read_profile_file
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY, op_columns

PROFILE_FORMATS = (
    "a PyTorch profiler trace (.json/.json.gz), a TensorBoard tf_stats/XProf CSV export, "
    "a NeuSight label CSV (with its .json beside it), "
    "a CSV of training-table rows (op columns such as Device_Conv2D), "
    "or a JSON list of {op: microseconds} objects"
)


@dataclass
class AnchorProfile:
    """One workload's profile on the anchor, as read from the user's file."""

    profile: pd.DataFrame  # one row: op columns, plus batch_latency when it was measured
    kind: str  # which of the accepted formats the file was
    batchsize: int | None = None
    notes: list[str] = field(default_factory=list)
    dataset: str | None = (
        None  # the dataset name when the file says it (a leading number is the input size, e.g. 64dataset)
    )

    @property
    def measured_latency(self) -> float | None:
        if BATCH_LATENCY not in self.profile:
            return None
        value = float(self.profile[BATCH_LATENCY].iloc[0])
        return value if math.isfinite(value) and value > 0 else None


def read_anchor_profile(path, anchor: str) -> AnchorProfile:
    """Read the user's profile file in whichever accepted format it is (told apart by its content)."""

    path = Path(path)
    if not path.is_file():
        raise ProfcastError(f"{path}: no such file; expected {PROFILE_FORMATS}")
    try:
        kind = profile_kind(path)
    except ProfcastError:
        if path.name.lower().endswith(".json"):
            return _read_json_profile(path)  # a JSON list of {op: us} objects
        raise
    if kind == "table":
        return _read_table_rows(path, anchor)
    return _read_run_file(path, kind)


def _read_run_file(path: Path, kind: str) -> AnchorProfile:
    """A tf_stats export or a PyTorch trace: op totals, batch_latency, and the batch size its name carries."""

    row = read_profile_file(path)
    batchsize = row.get("batchsize")
    profile = pd.DataFrame(
        [
            {
                name: value
                for name, value in row.items()
                if name in op_columns([name]) or name in (BATCH_LATENCY, PEAK_MEMORY)
            }
        ]
    )
    described = {
        "torch_trace": "PyTorch profiler trace",
        "tf_stats": "tf_stats export",
        "neusight": "NeuSight label file",
    }.get(kind, kind)
    return AnchorProfile(
        profile, described, batchsize=int(batchsize) if batchsize is not None else None, dataset=row.get("dataset")
    )


def _read_table_rows(path: Path, anchor: str) -> AnchorProfile:

    check_csv_header(path)  # pandas would rename a repeated op to <op>.1, an op no model knows
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ProfcastError(f"{path}: the file is empty; expected {PROFILE_FORMATS}") from None
    except Exception as error:  # pandas raises many types for malformed files
        raise ProfcastError(f"{path}: cannot be read as CSV ({error})") from None
    notes = []
    if "instance_name" in table.columns:
        found = sorted(table["instance_name"].dropna().astype(str).unique())
        table = table[table["instance_name"].astype(str) == anchor]
        if table.empty:
            raise ProfcastError(
                f"{path}: no row was profiled on the anchor {anchor}; instance_name values: {', '.join(found)}"
            )
    if table.empty:
        raise ProfcastError(f"{path}: holds no rows")
    if len(table) > 1:
        first = table.iloc[0]
        described = " ".join(str(first[key]) for key in ("dataset", "model", "batchsize") if key in table.columns)
        notes.append(
            f"{path.name} holds {len(table)} profiles; ranking the first ({described or 'row 1'}); "
            "pass a file with one row for another workload"
        )
    row = table.head(1).reset_index(drop=True)
    batchsize = None
    if "batchsize" in row.columns:
        value = pd.to_numeric(row["batchsize"], errors="coerce").iloc[0]
        if not (np.isfinite(value) and value > 0 and value % 1 == 0):
            raise ProfcastError(
                f"{path}: column 'batchsize' value {row['batchsize'].iloc[0]!r} is not a positive integer"
            )
        batchsize = int(value)
    dataset = str(row["dataset"].iloc[0]) if "dataset" in row.columns and row["dataset"].notna().iloc[0] else None
    return AnchorProfile(row, "training-table row", batchsize=batchsize, notes=notes, dataset=dataset)


def _read_json_profile(path: Path) -> AnchorProfile:
    accepted = 'expected a JSON list of {op: microseconds} objects, e.g. [{"Device_Conv2D": 812.5, "Host_IDLE": 40.1}]'
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise ProfcastError(f"{path}: not valid JSON ({error}); {accepted}") from None
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content or not all(isinstance(item, dict) and item for item in content):
        raise ProfcastError(f"{path}: {accepted}")
    notes = []
    keys = [set(item) for item in content]
    if sum(map(len, keys)) == len(set().union(*keys)):
        profile = {op: value for item in content for op, value in item.items()}  # one op per object
    else:
        profile = content[0]  # objects repeat ops: each is a whole profile
        notes.append(f"{path.name} holds {len(content)} profiles; ranking the first; pass a file with one for another")
    frame = pd.DataFrame([profile])
    batchsize = frame.pop("batchsize").iloc[0] if "batchsize" in frame else None
    if batchsize is not None and not (isinstance(batchsize, (int, np.integer)) and batchsize > 0):
        raise ProfcastError(f"{path}: 'batchsize' is {batchsize!r}; expected a positive integer")
    return AnchorProfile(frame, "JSON profile", batchsize=batchsize, notes=notes)
