"""Read profile files of any supported kind, told apart by their content, into profile rows.

Kinds: ``torch_trace`` (PyTorch profiler Chrome trace, ``.json``/``.json.gz``), ``tf_stats``
(TensorBoard/XProf ``tensorflow_stats``/``framework_op_stats`` CSV export), ``neusight`` (a NeuSight
label CSV with its ``.json`` beside it, see ``ingest/neusight.py``) and ``table`` (a wide profile
table, CSV, gzipped CSV or Parquet). A folder mixes them in the tf_stats layout
``<root>/<exp_name>/<instance_name>/<dataset>-<model>-<optimizer>-<batchsize>.<ext>``; NeuSight files
keep their own layout (``<GPU folder>/<model>-<train|inf>-<seq_len>-<batch>.csv``, at any depth).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.collected_runs import collect_runs
from profcast.ingest.csv_text import check_csv_header, first_csv_row
from profcast.ingest.neusight import is_neusight_header, is_neusight_sidecar, read_neusight_label
from profcast.ingest.suite_quality import SUITE_MANIFEST, measurement_flag  # the manifest is not a profile
from profcast.ingest.tables import text_encoding_problem, validate_profiles
from profcast.ingest.tfstats import (
    COLUMN_ALIASES,
    ON_BAD_FILE_CHOICES,
    REQUIRED_COLUMNS,
    SIDECAR_SUFFIX,
    TfStatsTree,
    read_tfstats_export,
    workload_from_file_name,
)
from profcast.ingest.torch_trace import read_torch_trace
from profcast.limits import MAX_INPUT_BYTES_ENV, CappedReader, max_input_bytes, shown_bytes
from profcast.schema import MEASURED_COLUMNS, RUN_KEYS

log = logging.getLogger(__name__)

KINDS = ("torch_trace", "tf_stats", "neusight", "table")
ACCEPTED = (
    'a PyTorch profiler trace (.json/.json.gz with "traceEvents"), a TensorBoard tf_stats/'
    "framework_op_stats CSV export, a NeuSight label CSV (with its .json beside it) "
    "or a wide profile table (.csv, .csv.gz, .parquet)"
)
LAYOUT = "<root>/<exp_name>/<instance_name>/<dataset>-<model>-<optimizer>-<batchsize>.<ext>"
# Longest first, so "x.pt.trace.json.gz" loses its whole suffix.
RUN_FILE_SUFFIXES = (".pt.trace.json.gz", ".pt.trace.json", ".json.gz", ".csv.gz", ".parquet", ".json", ".csv")
NEUSIGHT_LABELS = Path("scripts") / "asplos" / "label"
HEAD_BYTES = 1 << 20  # enough to see a trace's "traceEvents" key or a CSV header

# What read_profile_tree returns: the wide table, files seen, skipped files and duplicate runs.
ProfileTree = TfStatsTree


def profile_kind(path) -> str:
    """Which of KINDS the file holds, judged from its content; a ProfcastError naming the file if none."""
    path = Path(path)
    head = _head_text(path)
    if head is None:
        return "table"  # Parquet
    stripped = head.lstrip()
    if stripped.startswith(("{", "[")):
        if '"traceEvents"' in head:
            return "torch_trace"
        raise ProfcastError(f'{path}: JSON without "traceEvents" (not a PyTorch profiler trace); expected {ACCEPTED}')
    header = first_csv_row(stripped, path)
    names = {name.strip() for name in header}
    if all(any(s in names for s in COLUMN_ALIASES.get(c, (c,))) for c in REQUIRED_COLUMNS):
        return "tf_stats"
    if is_neusight_header(names):
        return "neusight"
    if set(RUN_KEYS) <= names or _looks_like_op_header(names):
        return "table"
    if {"OPName", "Latency", "Device"} <= names:  # profcast.atlas.neusight_kernels' header
        raise ProfcastError(
            f"{path}: a NeuSight kernel table (per-kernel timings), not a profile; read it with "
            "`profcast atlas --data FOLDER` (docs/atlas.md)"
        )
    raise ProfcastError(f"{path}: content of no known kind (first line {_shown(header)}); expected {ACCEPTED}")


def read_profile_file(path, keys: dict | None = None) -> dict:
    """One run's row from a trace, a tf_stats export or a one-row table: op columns, latencies and
    whichever run keys the file name (``<dataset>-<model>-<optimizer>-<batchsize>.<ext>``) or ``keys`` give."""
    rows = read_profile_rows(path, keys)
    if len(rows) != 1:
        raise ProfcastError(f"{path}: holds {len(rows)} runs; pass a file with one run")
    return rows[0]


def read_profile_rows(path, keys: dict | None = None) -> list[dict]:
    """Like ``read_profile_file``, but a table gives all its rows."""
    path = Path(path)
    if not path.is_file():
        raise ProfcastError(f"{path}: no such file; expected {ACCEPTED}")
    _, rows = _rows_of_file(path)
    workload = workload_from_file_name(_run_stem(path.name) + ".csv") or {}
    return [{**workload, **row, **(keys or {})} for row in rows]


def read_profile_tree(folder, on_bad_file: str = "raise", keys: dict | None = None) -> ProfileTree:
    """Every profile file under ``folder`` (laid out as LAYOUT; wide tables anywhere) in one wide table.

    Like ``read_tfstats_tree``: ``"raise"`` stops at the first bad file or duplicate run, ``"skip"``
    lists them in ``skipped``/``duplicates``. ``keys`` override the keys taken from the paths.
    """
    if on_bad_file not in ON_BAD_FILE_CHOICES:
        raise ProfcastError(f"on_bad_file={on_bad_file!r} is not supported; use one of {list(ON_BAD_FILE_CHOICES)}")
    root = Path(folder)
    if not root.is_dir():
        raise ProfcastError(f"{root}: profile folder does not exist; expected {LAYOUT}")
    if (root / NEUSIGHT_LABELS).is_dir():  # a NeuSight checkout: its label files, not its README and summaries
        root = root / NEUSIGHT_LABELS
    paths = sorted(
        p for p in root.rglob("*") if p.is_file() and _is_run_file(p.relative_to(root)) and not is_neusight_sidecar(p)
    )
    if not paths:
        raise ProfcastError(f"{root}: no profile file found; expected {LAYOUT}")
    runs, skipped, duplicates = collect_runs(
        paths, lambda path: [{**row, **(keys or {})} for row in _rows_in_tree(root, path)], on_bad_file
    )
    if not runs:
        first = f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ProfcastError(f"{root}: none of the {len(paths)} profile files could be read{first}")
    return ProfileTree(profiles_table(runs, source=str(root)), len(paths), skipped, duplicates)


def profiles_table(runs: list[dict], source: str) -> pd.DataFrame:
    """Rows -> validated wide table: keys, latencies and peak memory, then op columns sorted by name (absent op = 0 µs)."""
    table = pd.DataFrame(runs)
    missing = [key for key in RUN_KEYS if key not in table.columns or table[key].isna().any()]
    if missing:
        raise ProfcastError(
            f"{source}: run key(s) {missing} unknown for some run; name files {LAYOUT} "
            "or pass them explicitly (--exp, --instance, --dataset, --model, --optimizer, --batchsize)"
        )
    latencies = [c for c in MEASURED_COLUMNS if c in table.columns]
    ops = sorted(c for c in table.columns if c not in RUN_KEYS and c not in MEASURED_COLUMNS)
    # A run that never executed an op spent 0 µs in it, so absent ops are 0.0, not NaN.
    table[ops] = table[ops].astype(float).fillna(0.0)
    table = table[RUN_KEYS + latencies + ops].sort_values(RUN_KEYS, kind="stable").reset_index(drop=True)
    return validate_profiles(table, source=source)


def _rows_of_file(path: Path) -> tuple[str, list[dict]]:
    """The file's kind and the run rows it holds (one for a trace or export; each row for a table)."""
    kind = profile_kind(path)
    try:
        if kind == "torch_trace":  # a suite's trace carries the suite's verdict on its measurement
            return kind, [{**read_torch_trace(path), **measurement_flag(path)}]
        if kind == "neusight":
            return kind, [read_neusight_label(path)]
        if kind == "tf_stats":
            if _is_gzip(path):  # the tf_stats reader reads plain text; TensorBoard never gzips its exports
                raise ProfcastError(f"{path}: gzipped tf_stats export; gunzip it first")
            return kind, [read_tfstats_export(path)]
        return kind, _table_rows(path)
    except UnicodeDecodeError as error:  # a bad byte past the head profile_kind looked at
        raise ProfcastError(f"{path}: {text_encoding_problem(path, error)}") from None


def _rows_in_tree(root: Path, path: Path) -> list[dict]:
    """A file's rows with the run keys its place in the tree gives (tables carry their own)."""
    kind, rows = _rows_of_file(path)
    if kind in ("table", "neusight"):  # a NeuSight row carries its keys (GPU from its folder, workload from its name)
        return rows
    parts = path.relative_to(root).parts
    if len(parts) != 3:
        raise ProfcastError(f"{path}: file is not at the expected depth; expected {LAYOUT}")
    workload = workload_from_file_name(_run_stem(parts[2]) + ".csv")
    if workload is None:
        raise ProfcastError(
            f"{path}: file name does not say the workload; expected {LAYOUT} "
            "(fields separated by '-', batch size a positive integer)"
        )
    return [{"exp_name": parts[0], "instance_name": parts[1], **workload, **rows[0]}]


def _table_rows(path: Path) -> list[dict]:
    try:
        if _is_parquet(path):
            table = pd.read_parquet(path)
        else:
            check_csv_header(path)
            table = pd.read_csv(path, compression="gzip" if _is_gzip(path) else None)
    except ProfcastError:
        raise
    except UnicodeDecodeError as error:
        raise ProfcastError(f"{path}: {text_encoding_problem(path, error)}") from None
    except Exception as error:  # pandas/pyarrow raise many types for malformed files
        raise ProfcastError(f"{path}: cannot be read as a profile table ({error})") from None
    if table.empty:
        raise ProfcastError(f"{path}: profile table holds no rows")
    if set(RUN_KEYS) <= set(table.columns):  # the same checks as a table given to data.path
        table = validate_profiles(table, source=str(path), first_line=None if _is_parquet(path) else 2)
    return [
        {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v) and k in MEASURED_COLUMNS)}
        for row in table.to_dict("records")
    ]


def _head_text(path: Path) -> str | None:
    """The first HEAD_BYTES of the file as text (gunzipped if needed); None for Parquet."""
    limit = max_input_bytes()
    try:
        if path.stat().st_size > limit:
            raise ProfcastError(
                f"{path}: {shown_bytes(path.stat().st_size)} is past the input size limit "
                f"({MAX_INPUT_BYTES_ENV}={limit}); raise it if the file is a real profile"
            )
        with open(path, "rb") as handle:
            magic = handle.read(4)
            if magic == b"PAR1":
                return None
            handle.seek(0)
            raw = handle.read(HEAD_BYTES)
            if magic[:2] == b"\x1f\x8b":
                raw = _gunzipped_head(path)
    except OSError as error:
        raise ProfcastError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not raw.strip():
        raise ProfcastError(f"{path}: file is empty; expected {ACCEPTED}")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ProfcastError(f"{path}: UTF-16 text; save it as UTF-8. Expected {ACCEPTED}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if len(raw) == HEAD_BYTES and error.start >= len(raw) - 3:  # the head cut a multi-byte character in two
            return raw[: error.start].decode("utf-8-sig")
        raise ProfcastError(f"{path}: not UTF-8 text (byte {error.start}); expected {ACCEPTED}") from None


def _gunzipped_head(path: Path) -> bytes:
    """Decompress the start of a gzip file and check the rest is whole (a cut-off file fails here)."""
    try:  # the capped reader stops a gzip bomb at the input size limit, in bounded memory
        with CappedReader(gzip.open(path, "rb"), str(path)) as handle:
            head = handle.read(HEAD_BYTES)
            while handle.read(HEAD_BYTES):  # reading to the end checks length and CRC
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise ProfcastError(f"{path}: truncated or corrupt gzip; expected {ACCEPTED}") from None
    return head


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _looks_like_op_header(names: set[str]) -> bool:
    """A table without keys still counts when its columns are op names (``Device_...``/``Host_...``)."""
    return any(name.startswith(("Device_", "Host_")) for name in names)


def _is_run_file(relative: Path) -> bool:
    """Files a tree holds runs in: not hidden, not a tf_stats latency sidecar (NeuSight step-time .json: is_neusight_sidecar),
    not a suite's manifest."""
    return (
        not any(part.startswith(".") for part in relative.parts)
        and not relative.name.endswith(SIDECAR_SUFFIX)
        and relative.name != SUITE_MANIFEST
    )


def _run_stem(file_name: str) -> str:
    lowered = file_name.lower()
    suffix = next((s for s in RUN_FILE_SUFFIXES if lowered.endswith(s)), "")
    return file_name[: len(file_name) - len(suffix)]


def _shown(header: list[str]) -> str:
    text = ",".join(header)
    return repr(text if len(text) <= 60 else text[:57] + "...")
