"""Load a wide profile table (one row per profiled run) and check it before anything trains on it."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.csv_text import check_csv_header
from profcast.limits import MAX_INPUT_BYTES_ENV, CappedReader, max_input_bytes, shown_bytes, value_limit, value_rule
from profcast.names import check_name, is_safe_name
from profcast.schema import MEASURED_COLUMNS, RUN_KEYS, op_columns

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def read_profile_table(path: str | Path) -> pd.DataFrame:
    """Read a wide profile table from CSV, gzipped CSV or Parquet and validate it."""
    path = Path(path)
    if not path.exists():
        raise ProfcastError(f"{path}: no such file or folder")
    name = path.name.lower()
    first_line = None
    try:
        if path.is_file() and path.stat().st_size > max_input_bytes():
            raise ProfcastError(
                f"{path}: {shown_bytes(path.stat().st_size)} is past the input size limit "
                f"({MAX_INPUT_BYTES_ENV}={max_input_bytes()}); raise it if the file is a real profile"
            )
        if name.endswith(".parquet"):
            table = pd.read_parquet(path)
        elif name.endswith(".csv.gz"):  # read through the cap: a small gzip may unpack to GBs
            check_csv_header(path)
            with CappedReader(gzip.open(path, "rb"), str(path)) as stream:
                table = pd.read_csv(stream)
            first_line = 2
        elif name.endswith(".csv"):
            check_csv_header(path)
            table = pd.read_csv(path)
            first_line = 2  # data row 0 is line 2, under the header
        else:
            raise ProfcastError(
                f"{path}: unsupported file type; accepted: {', '.join(TABLE_SUFFIXES)} "
                "or a folder of TensorBoard tf_stats exports"
            )
    except ProfcastError:
        raise
    except pd.errors.EmptyDataError:
        raise ProfcastError(f"{path}: the file is empty") from None
    except UnicodeDecodeError as error:
        raise ProfcastError(f"{path}: {text_encoding_problem(path, error)}") from None
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise ProfcastError(f"{path}: cannot be read as a profile table ({exc})") from None
    return validate_profiles(table, source=str(path), first_line=first_line)


def text_encoding_problem(path: Path, error: UnicodeDecodeError) -> str:
    """Why a text file could not be decoded, in words: UTF-16 (a byte-order mark) or another encoding."""
    with open(path, "rb") as handle:
        start = handle.read(2)
    if start in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text; save it as UTF-8"
    return "not UTF-8 text (another encoding, such as Latin-1 or Windows-1252); save it as UTF-8"


def row_place(table: pd.DataFrame, row: int, first_line: int | None) -> str:
    """Where data row ``row`` (0-based) is: 'line N' of the file a person opens, or 'row N' of a frame
    followed by the run it holds (exp/instance/dataset-model-optimizer-batchsize) when its keys are known."""
    if first_line is not None:
        return f"line {row + first_line}"
    keys = [key for key in RUN_KEYS if key in table.columns]
    if len(keys) < len(RUN_KEYS):
        return f"row {row}"
    values = [str(shown_value(table[key].iloc[row])).strip("'") for key in keys]
    return f"row {row} (run {values[0]}/{values[1]}/{'-'.join(values[2:])})"


def validate_profiles(
    table: pd.DataFrame, source: str = "profile table", first_line: int | None = None
) -> pd.DataFrame:
    """Check keys and op values; return a clean copy (keys as strings, batchsize int, ops float).

    ``first_line`` is the file line of data row 0 (2 for a CSV with a header): messages then say
    "line N"; without it they say "row N" (0-based, as in the frame).
    """
    if table.empty:
        raise ProfcastError(f"{source}: holds no rows")
    missing = [key for key in RUN_KEYS if key not in table.columns]
    if missing:
        raise ProfcastError(
            f"{source}: missing key column(s) {', '.join(missing)}; a profile table needs {', '.join(RUN_KEYS)}"
        )
    unnamed = [str(c) for c in table.columns if str(c).startswith("Unnamed:") or not str(c).strip()]
    if unnamed:
        raise ProfcastError(
            f"{source}: column {unnamed[0]!r} has no name in the header (pandas writes its row index there "
            "unless to_csv(..., index=False)); drop that column or name it; an op column is named Device_<Op> or Host_<Op>"
        )
    ops = op_columns(table.columns)
    if not ops:
        raise ProfcastError(f"{source}: no op columns besides the keys {', '.join(RUN_KEYS)}")
    clean = table.copy()
    for key in RUN_KEYS:
        if clean[key].isna().any():
            row = int(np.flatnonzero(clean[key].isna().to_numpy())[0])
            raise ProfcastError(f"{source}: empty value in key column '{key}' ({row_place(table, row, first_line)})")
    batchsize = pd.to_numeric(clean["batchsize"], errors="coerce")
    if batchsize.isna().any() or (batchsize <= 0).any() or (batchsize % 1 != 0).any():
        row = int(np.flatnonzero((batchsize.isna() | (batchsize <= 0) | (batchsize % 1 != 0)).to_numpy())[0])
        raise ProfcastError(
            f"{source}: column 'batchsize' {row_place(table, row, first_line)} has value "
            f"{shown_value(clean['batchsize'].iloc[row])}; expected a positive integer"
        )
    clean["batchsize"] = batchsize.astype(int)
    for key in RUN_KEYS:
        if key != "batchsize":
            clean[key] = clean[key].astype(str)
    unsafe = ~clean["instance_name"].map(is_safe_name)  # it names folders, runs, models and CSV cells
    if unsafe.any():
        row = int(np.flatnonzero(unsafe.to_numpy())[0])
        check_name(clean["instance_name"].iloc[row], "instance_name", f"{source}: {row_place(table, row, first_line)}")
    checked = {
        column: _checked_numbers(clean[column], column, source, column in MEASURED_COLUMNS, first_line, table)
        for column in ops + [c for c in MEASURED_COLUMNS if c in clean.columns]
    }
    # One frame built at once: assigning a catalogue's hundreds of op columns one by one left a frame of
    # as many blocks, and every later step on it (pairing, the what-if) warned PerformanceWarning.
    clean = pd.concat([clean.drop(columns=list(checked)), pd.DataFrame(checked, index=clean.index)], axis=1)
    clean = clean[list(table.columns)].copy()
    silent = np.flatnonzero((clean[ops].to_numpy() == 0).all(axis=1))
    if silent.size:
        raise ProfcastError(
            f"{source}: {row_place(table, int(silent[0]), first_line)} records 0 µs for every op "
            f"({silent.size} such run(s)); a profile must record the time its ops took"
        )
    duplicated = clean.duplicated(subset=RUN_KEYS)
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = ", ".join(f"{key}={shown_value(clean[key].iloc[row])}" for key in RUN_KEYS)
        raise ProfcastError(
            f"{source}: {int(duplicated.sum())} duplicate run(s), e.g. {row_place(table, row, first_line)} ({first})"
        )
    return clean.reset_index(drop=True)


# How each kind of bad number is worded in messages about files.
BAD_NUMBER_WORDING = {
    "text": "is not a number",
    "missing": "is missing (NaN)",
    "infinite": "is infinite",
    "negative": "is negative",
    "too_large": "is past the plausible limit",
}


def parse_numbers(
    values: pd.Series, allow_missing: bool, upper: float = np.inf
) -> tuple[pd.Series, tuple[int, str] | None]:
    """The values as floats, and the row and kind (a BAD_NUMBER_WORDING key) of the first value that is
    not a finite number from 0 to ``upper``, or None when every value is one."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    text = numbers.isna() & values.notna()
    checks = [
        (text, "text"),
        (numbers.isna() & ~text & (not allow_missing), "missing"),
        (np.isinf(numbers), "infinite"),
        (numbers < 0, "negative"),
        (np.isfinite(numbers) & (numbers > upper), "too_large"),
    ]
    for mask, kind in checks:
        if mask.any():
            return numbers, (int(np.flatnonzero(mask.to_numpy())[0]), kind)
    return numbers, None


SHOWN_CHARACTERS = 60  # a value quoted in a message is cut here: one line stays one readable line


def shown_value(value) -> str:
    """A cell value as a user wrote it (no numpy type names), cut to SHOWN_CHARACTERS."""
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= SHOWN_CHARACTERS else f"{text[: SHOWN_CHARACTERS - 3]}... ({len(text):,} characters)"


def _checked_numbers(
    values: pd.Series, column: str, source: str, allow_nan: bool, first_line: int | None, table: pd.DataFrame
) -> pd.Series:
    """Op times, latencies and peak memory must be finite, non-negative, plausible numbers (latency and memory may be missing)."""
    numbers, bad = parse_numbers(values, allow_missing=allow_nan, upper=value_limit(column))
    if bad:
        row, kind = bad
        raise ProfcastError(
            f"{source}: column '{column}' {row_place(table, row, first_line)} value {shown_value(values.iloc[row])} "
            f"{BAD_NUMBER_WORDING[kind]}; {value_rule(column)}"
        )
    return numbers


def known_instances(profiles: pd.DataFrame) -> list[str]:
    """Instance names present in a profile table, sorted."""
    return sorted(profiles["instance_name"].unique())
