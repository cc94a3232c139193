"""The atlas's second table: measured collective calls (NCCL/oneCCL), one row per op, GPU count and message size.

Columns (``COLLECTIVE_COLUMNS``): ``source``, ``gpu`` (slug), ``op`` (all_reduce | all_gather |
reduce_scatter | alltoall), ``num_gpus``, ``message_bytes`` (the message each GPU holds, as the
table records it), ``dtype`` (fp16, int8, ...), ``latency_ms``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.atlas.table import SOURCES
from profcast.errors import ProfcastError

COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
COLLECTIVE_COLUMNS = ("source", "gpu", "op", "num_gpus", "message_bytes", "dtype", "latency_ms")
# The tables' dtype names -> ours ("half" is NCCL's name for fp16).
DTYPES = {"half": "fp16", "float16": "fp16", "bfloat16": "bf16", "float": "fp32", "float32": "fp32", "int8": "int8"}


def collective_table(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` checked against the collectives schema, in its column order and types."""
    missing = [c for c in COLLECTIVE_COLUMNS if c not in frame.columns]
    if missing:
        raise ProfcastError(f"{where}: collectives table lacks column {missing[0]!r}")
    table = frame.loc[:, list(COLLECTIVE_COLUMNS)].reset_index(drop=True)
    for column, accepted in (
        ("source", SOURCES),
        ("op", COLLECTIVE_OPS),
        ("dtype", tuple(sorted(set(DTYPES.values())))),
    ):
        values = table[column].astype("string")
        unknown = ~values.isin(accepted)
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise ProfcastError(
                f"{where}: row {row}: {column} {values.iloc[row]!r} is not one of {', '.join(accepted)}"
            )
        table[column] = pd.Categorical(values, categories=accepted)
    table["gpu"] = table["gpu"].astype("string").astype("category")
    for column, minimum in (("num_gpus", 2), ("message_bytes", 1), ("latency_ms", 0)):
        numbers = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(numbers) | (numbers < minimum) | ((numbers <= 0) if column == "latency_ms" else False)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ProfcastError(f"{where}: row {row}: {column} {table[column].iloc[row]!r} is out of range")
        table[column] = numbers if column == "latency_ms" else numbers.astype("int64")
    return table


def concat_collective_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several collectives tables as one."""
    if not tables:
        return collective_table(pd.DataFrame({c: pd.Series(dtype="string") for c in COLLECTIVE_COLUMNS}), "empty")
    joined = pd.concat(tables, ignore_index=True)
    joined["gpu"] = joined["gpu"].astype("string").astype("category")
    return joined
