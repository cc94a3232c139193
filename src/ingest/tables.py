"""Load a wide profile table (one row per profiled run) and check it before anything trains on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from src.errors import ProfcastError
from src.schema import LATENCY_COLUMNS, RUN_KEYS, op_columns

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def read_profile_table(path: str | Path) -> pd.DataFrame:
    """Read a wide profile table from CSV, gzipped CSV or Parquet and validate it."""
    path = Path(path)
    if not path.exists():
        raise ProfcastError(f"{path}: no such file or folder")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            table = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz")):
            table = pd.read_csv(path)
        else:
            raise ProfcastError(
                f"{path}: unsupported file type; accepted: {', '.join(TABLE_SUFFIXES)} "
                "or a folder of TensorBoard tf_stats exports"
            )
    except ProfcastError:
        raise
    except pd.errors.EmptyDataError:
        raise ProfcastError(f"{path}: the file is empty") from None
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise ProfcastError(f"{path}: cannot be read as a profile table ({exc})") from None
    return validate_profiles(table, source=str(path))


def validate_profiles(table: pd.DataFrame, source: str = "profile table") -> pd.DataFrame:
    """Check keys and op values; return a clean copy (keys as strings, batchsize int, ops float)."""
    if table.empty:
        raise ProfcastError(f"{source}: holds no rows")
    missing = [key for key in RUN_KEYS if key not in table.columns]
    if missing:
        raise ProfcastError(
            f"{source}: missing key column(s) {', '.join(missing)}; a profile table needs {', '.join(RUN_KEYS)}"
        )
    ops = op_columns(table.columns)
    if not ops:
        raise ProfcastError(f"{source}: no op columns besides the keys {', '.join(RUN_KEYS)}")
    clean = table.copy()
    for key in RUN_KEYS:
        if clean[key].isna().any():
            row = int(np.flatnonzero(clean[key].isna().to_numpy())[0])
            raise ProfcastError(f"{source}: empty value in key column '{key}' (row {row})")
    batchsize = pd.to_numeric(clean["batchsize"], errors="coerce")
    if batchsize.isna().any() or (batchsize <= 0).any() or (batchsize % 1 != 0).any():
        bad = clean["batchsize"][batchsize.isna() | (batchsize <= 0) | (batchsize % 1 != 0)].iloc[0]
        raise ProfcastError(f"{source}: column 'batchsize' has value {bad!r}; expected a positive integer")
    clean["batchsize"] = batchsize.astype(int)
    for key in RUN_KEYS:
        if key != "batchsize":
            clean[key] = clean[key].astype(str)
    for column in ops + [c for c in LATENCY_COLUMNS if c in clean.columns]:
        clean[column] = _checked_numbers(clean[column], column, source, allow_nan=column in LATENCY_COLUMNS)
    duplicated = clean.duplicated(subset=RUN_KEYS)
    if duplicated.any():
        first = clean.loc[duplicated, RUN_KEYS].iloc[0].to_dict()
        raise ProfcastError(f"{source}: {int(duplicated.sum())} duplicate run(s), e.g. {first}")
    return clean.reset_index(drop=True)


# How each kind of bad number is worded in messages about files.
BAD_NUMBER_WORDING = {
    "text": "is not a number",
    "missing": "is missing (NaN)",
    "infinite": "is infinite",
    "negative": "is negative",
}


def parse_numbers(values: pd.Series, allow_missing: bool) -> tuple[pd.Series, tuple[int, str] | None]:
    """The values as floats, and the row and kind (a BAD_NUMBER_WORDING key) of the first value that is
    not a finite number >= 0, or None when every value is one."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    text = numbers.isna() & values.notna()
    checks = [
        (text, "text"),
        (numbers.isna() & ~text & (not allow_missing), "missing"),
        (np.isinf(numbers), "infinite"),
        (numbers < 0, "negative"),
    ]
    for mask, kind in checks:
        if mask.any():
            return numbers, (int(np.flatnonzero(mask.to_numpy())[0]), kind)
    return numbers, None


def shown_value(value) -> str:
    """A cell value as a user wrote it (no numpy type names)."""
    return repr(value.item() if hasattr(value, "item") else value)


def _checked_numbers(values: pd.Series, column: str, source: str, allow_nan: bool) -> pd.Series:
    """Op times and latencies must be finite, non-negative numbers (latency may be missing)."""
    numbers, bad = parse_numbers(values, allow_missing=allow_nan)
    if bad:
        row, kind = bad
        raise ProfcastError(
            f"{source}: column '{column}' row {row} value {shown_value(values.iloc[row])} {BAD_NUMBER_WORDING[kind]}; "
            "op times must be finite numbers >= 0"
        )
    return numbers


def known_instances(profiles: pd.DataFrame) -> list[str]:
    """Instance names present in a profile table, sorted."""
    return sorted(profiles["instance_name"].unique())
