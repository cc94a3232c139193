"""Read a folder of raw TensorBoard tf_stats exports into the wide profile table.

Layout: ``<root>/<exp_name>/<instance_name>/<run>.csv``, one CSV per profiled run, as
written by TensorBoard's "tensorflow_stats" tool (``...&tag=tensorflow_stats&tqx=out:csv``).
A run's op vector is the sum of ``Total time (us)`` per (``Host/device``, ``Type``), named
``<Host|Device>_<Type>`` -- the same aggregation the PROFET study used.

Two run-file names are accepted (fields separated by '-', so no field may contain one):
  own:    ``<dataset>-<model>-<optimizer>-<batchsize>.csv``
  PROFET: ``<instance>-<instance>-<dataset>-<model>-<optimizer>-<batchsize>-<timestamp>.csv``
An optional latency sidecar ``<run>.latency.json`` beside the CSV holds
``{"batch_latency": seconds, "epoch_latency": seconds}`` (either key may be left out).
"""

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.collected_runs import collect_runs
from profcast.ingest.csv_text import checked_rows
from profcast.limits import MAX_INPUT_BYTES_ENV, max_input_bytes, shown_bytes
from profcast.schema import LATENCY_COLUMNS, RUN_KEYS

SIDECAR_SUFFIX = ".latency.json"
ON_BAD_FILE_CHOICES = ("raise", "skip")
HOST_OR_DEVICE = ("Host", "Device")

# XProf (TensorBoard's profile plugin, tool `framework_op_stats`, formerly `tensorflow_stats`) renamed
# two headers in mid-2025; either spelling is accepted and gives the same row.
COLUMN_ALIASES = {
    "Type": ("Type", "Operation Type"),
    "Operation": ("Operation", "Operation Name"),
}
REQUIRED_COLUMNS = [
    "Rank",
    "Host/device",
    "Type",
    "Operation",
    "#Occurrences",
    "Total time (us)",
    "Avg. time (us)",
    "Total self-time (us)",
    "Avg. self-time (us)",
]
OWN_NAME = "<dataset>-<model>-<optimizer>-<batchsize>.csv"
PROFET_NAME = "<instance>-<instance>-<dataset>-<model>-<optimizer>-<batchsize>-<timestamp>.csv"
LAYOUT = "<root>/<exp_name>/<instance_name>/<run>.csv"


@dataclass
class TfStatsTree:
    """What ``read_tfstats_tree`` found.

    profiles: the wide table, one row per run (RUN_KEYS, latencies if any, op columns).
    n_files: run CSVs found under the root, readable or not.
    skipped: (path, reason) for each bad file left out in ``on_bad_file="skip"`` mode.
    duplicates: (dropped path, kept path) for each run whose RUN_KEYS were already read.
    """

    profiles: pd.DataFrame
    n_files: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)


class _BadFile(Exception):
    """A problem with one file; becomes a ProfcastError or a `skipped` entry."""


def read_tfstats_tree(root, on_bad_file: str = "raise") -> TfStatsTree:
    """Read every ``<root>/<exp>/<instance>/<run>.csv`` tf_stats export into one wide table.

    ``on_bad_file="raise"`` stops at the first bad file or duplicate run with a ProfcastError
    naming it; ``"skip"`` leaves such files out and lists them in ``skipped``/``duplicates``.
    """
    if on_bad_file not in ON_BAD_FILE_CHOICES:
        raise ProfcastError(f"on_bad_file={on_bad_file!r} is not supported; use one of {list(ON_BAD_FILE_CHOICES)}")
    root = Path(root)
    if not root.is_dir():
        raise ProfcastError(f"{root}: profile folder does not exist; expected {LAYOUT}")
    paths = sorted(root.rglob("*.csv"))
    if not paths:
        raise ProfcastError(f"{root}: no .csv tf_stats export found; expected {LAYOUT}")

    def read_run(path: Path) -> list[dict]:
        try:
            return [_read_run(root, path)]
        except _BadFile as problem:
            raise ProfcastError(f"{path}: {problem}") from None

    runs, skipped, duplicates = collect_runs(paths, read_run, on_bad_file)
    if not runs:
        first = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ProfcastError(f"{root}: none of the {len(paths)} .csv files could be read{first}")
    return TfStatsTree(_wide_table(runs), len(paths), skipped, duplicates)


def read_tfstats_export(path) -> dict[str, float]:
    """One export on its own: ``<Host|Device>_<Type>`` totals plus its sidecar's latencies, if any."""
    path = Path(path)
    try:
        return {**_op_times(path), **_latencies(path)}
    except _BadFile as problem:
        raise ProfcastError(f"{path}: {problem}") from None


def _read_run(root: Path, path: Path) -> dict:
    """One run as a dict: run keys, optional latencies and ``<Host|Device>_<Type>`` sums."""
    run = _run_keys_from_path(root, path)
    run["ops"] = _op_times(path)
    run.update(_latencies(path))
    return run


def _run_keys_from_path(root: Path, path: Path) -> dict:
    parts = path.relative_to(root).parts
    if len(parts) != 3:
        raise _BadFile(f"file is not at the expected depth; expected {LAYOUT}")
    exp_name, instance_name, file_name = parts
    return {"exp_name": exp_name, "instance_name": instance_name, **_workload_from_name(file_name, instance_name)}


def workload_from_file_name(file_name: str) -> dict | None:
    """dataset, model, optimizer and batchsize from an export's own or PROFET-style name; None if neither."""
    try:
        return _workload_from_name(file_name, instance_name=None)
    except _BadFile:
        return None


def _workload_from_name(file_name: str, instance_name: str | None) -> dict:
    """Parse a run file name; a PROFET-style name must repeat `instance_name` (when given) twice."""
    fields = file_name[: -len(".csv")].split("-")
    accepted = f"expected {OWN_NAME} or {PROFET_NAME}"
    if len(fields) == 4:
        dataset, model, optimizer, batchsize = fields
    elif len(fields) >= 7:
        if instance_name is not None and (fields[0] != instance_name or fields[1] != instance_name):
            raise _BadFile(
                f"PROFET-style name starts with {fields[0]!r}-{fields[1]!r} but the file is in "
                f"instance folder {instance_name!r}; {accepted}"
            )
        dataset, model, optimizer, batchsize = fields[2:6]
    else:
        raise _BadFile(f"file name has {len(fields)} '-'-separated fields; {accepted}")
    if not all((dataset, model, optimizer)):
        raise _BadFile(f"file name has an empty dataset, model or optimizer field; {accepted}")
    if not batchsize.isdigit() or int(batchsize) <= 0:
        raise _BadFile(f"batch size {batchsize!r} in the file name is not a positive integer; {accepted}")
    return {"dataset": dataset, "model": model, "optimizer": optimizer, "batchsize": int(batchsize)}


def _op_times(path: Path) -> dict[str, float]:
    """Sum ``Total time (us)`` per ``<Host|Device>_<Type>`` over the rows of one export."""
    if path.stat().st_size > max_input_bytes():  # rows are summed as they stream: only time grows, so cap it
        raise _BadFile(
            f"{shown_bytes(path.stat().st_size)} is past the input size limit ({MAX_INPUT_BYTES_ENV}={max_input_bytes()})"
        )
    # The csv module is ~10x faster per small file than pandas.read_csv (measured), and
    # utf-8-sig drops the byte-order mark some exporters write.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = checked_rows(csv.reader(handle), path)
        header = next(reader, None)
        if header is None:
            raise _BadFile("file is empty; expected a TensorBoard tf_stats CSV export")
        where, missing = _column_positions(header)
        if missing:
            raise _BadFile(f"not a tf_stats export: missing column(s) {missing}; expected at least {REQUIRED_COLUMNS}")
        host_col, type_col, time_col = where["Host/device"], where["Type"], where["Total time (us)"]
        width = len(header)
        sums: dict[str, float] = {}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise _BadFile(f"line {line_no} has {len(row)} fields, the header has {width}")
            host_or_device, op_type, text = row[host_col], row[type_col], row[time_col]
            if host_or_device not in HOST_OR_DEVICE:
                raise _BadFile(
                    f"line {line_no}: Host/device is {host_or_device!r}; expected one of {list(HOST_OR_DEVICE)}"
                )
            if not op_type:
                raise _BadFile(f"line {line_no}: empty Type")
            try:
                total_us = float(text)
            except ValueError:
                raise _BadFile(f"line {line_no}: Total time (us) is {text!r}; expected a finite number >= 0") from None
            if not math.isfinite(total_us) or total_us < 0:
                raise _BadFile(f"line {line_no}: Total time (us) is {text!r}; expected a finite number >= 0")
            column = f"{host_or_device}_{op_type}"
            sums[column] = sums.get(column, 0.0) + total_us
    if not sums:
        raise _BadFile("file has a header but no op rows; expected a TensorBoard tf_stats CSV export")
    return sums


def _column_positions(header: list[str]) -> tuple[dict[str, int], list[str]]:
    """Index of each required column (aliases resolved) and the names that are missing."""
    index = {name.strip(): i for i, name in enumerate(header)}
    where, missing = {}, []
    for name in REQUIRED_COLUMNS:
        spellings = COLUMN_ALIASES.get(name, (name,))
        found = next((index[s] for s in spellings if s in index), None)
        if found is None:
            missing.append(name)
        else:
            where[name] = found
    return where, missing


def _latencies(path: Path) -> dict[str, float]:
    """The run's measured latencies from its sidecar, or {} when there is no sidecar."""
    sidecar = path.with_name(path.name[: -len(".csv")] + SIDECAR_SUFFIX)
    if not os.path.exists(sidecar):
        return {}
    accepted = 'expected a JSON object like {"batch_latency": 0.012, "epoch_latency": 46.9} (seconds > 0)'
    try:
        with open(sidecar, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError) as error:
        raise _BadFile(f"latency sidecar {sidecar} is not valid JSON ({error}); {accepted}") from None
    if not isinstance(content, dict) or not content:
        raise _BadFile(f"latency sidecar {sidecar} is not a non-empty JSON object; {accepted}")
    unknown = sorted(set(content) - set(LATENCY_COLUMNS))
    if unknown:
        raise _BadFile(f"latency sidecar {sidecar} has unknown key(s) {unknown}; {accepted}")
    for name, value in content.items():
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value <= 0:
            raise _BadFile(f"latency sidecar {sidecar}: {name} is {value!r}; {accepted}")
    return {name: float(value) for name, value in content.items()}


def _wide_table(runs: list[dict]) -> pd.DataFrame:
    """Runs -> wide table: keys, latencies present in any run, then op columns sorted by name."""
    op_names = sorted({name for run in runs for name in run["ops"]})
    position = {name: i for i, name in enumerate(op_names)}
    # A run that never executed an op spent 0 us in it, so absent ops are 0.0, not NaN.
    op_times = np.zeros((len(runs), len(op_names)))
    for row, run in enumerate(runs):
        for name, value in run["ops"].items():
            op_times[row, position[name]] = value
    table = pd.DataFrame({key: [run[key] for run in runs] for key in RUN_KEYS})
    table["batchsize"] = table["batchsize"].astype("int64")
    for latency in LATENCY_COLUMNS:
        if any(latency in run for run in runs):
            table[latency] = [run.get(latency, np.nan) for run in runs]
    table = pd.concat([table, pd.DataFrame(op_times, columns=op_names)], axis=1)
    return table.sort_values(RUN_KEYS, kind="stable").reset_index(drop=True)
