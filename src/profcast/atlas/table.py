"""The atlas's kernel table: one row per measured kernel call, the schema every source is read into.

Columns (``KERNEL_COLUMNS``):

- ``source``: ``neusight`` or ``aiconfigurator``; ``gpu``: the canonical slug (``atlas.gpus``);
- ``precision``: fp32 (TF32 off) | tf32 | bf16 | fp16 | fp8 | fp4;
- ``op_kind``: bmm | linear | gemm | conv | elementwise | softmax | layernorm | attention;
  ``op``: the specific op (add, mul, gelu, relu, linear, bmm, fp8_block, ...);
- ``phase``: forward | backward;
- ``batch``, ``m``, ``n``, ``k`` (int): matrix ops ``batch`` x (m x k) @ (k x n) (NeuSight's B, M, N,
  K; an AIConfigurator GEMM has batch 1); a convolution as its implicit GEMM (batch = images, m = output
  pixels, n = output channels, k = input channels x kernel area); vector ops (elementwise, softmax,
  layernorm) batch 1, m rows (NeuSight's B) of n elements (H), k 1; attention batch = batch size,
  m = sequence length, n = query heads, k = head size, and ``kv_heads`` (NaN for every other kind);
- ``flops``, ``bytes``: the call's work at its precision (``gemm_work``, ``vector_work``,
  ``attention_work``); ``latency_ms``: the measured time; ``split``: train | test (NeuSight's own
  split) or all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError

SOURCES = ("neusight", "aiconfigurator")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4")
OP_KINDS = ("bmm", "linear", "gemm", "conv", "elementwise", "softmax", "layernorm", "attention")
PHASES = ("forward", "backward")
SPLITS = ("train", "test", "all")
SHAPE_COLUMNS = ("batch", "m", "n", "k")
KERNEL_COLUMNS = (
    "source",
    "gpu",
    "precision",
    "op_kind",
    "op",
    "phase",
    *SHAPE_COLUMNS,
    "kv_heads",
    "flops",
    "bytes",
    "latency_ms",
    "split",
)
# Columns with a fixed vocabulary: stored as categoricals of these categories, so tables from any
# source concatenate without falling back to object columns (and take a fraction of the memory).
VOCABULARIES = {"source": SOURCES, "precision": PRECISIONS, "op_kind": OP_KINDS, "phase": PHASES, "split": SPLITS}
# Bytes per element of an operand at each precision (TF32 keeps FP32 storage; FP4 packs two per byte).
PRECISION_BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}
# fp8 and fp4 GEMMs write their output in bf16 (AIConfigurator's vLLM kernels do).
OUTPUT_BYTES = {"fp8": 2.0, "fp4": 2.0}
# FLOPs per element of the vector kinds: the counts models/call_costs uses (norm 8, softmax 5, else 1).
ELEMENT_FLOPS = {"elementwise": 1.0, "softmax": 5.0, "layernorm": 8.0}


def gemm_work(batch, m, n, k, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of ``batch`` products (m x k) @ (k x n): 2·m·n·k each; A and B read, C written once."""
    batch, m, n, k = (np.asarray(v, dtype=float) for v in (batch, m, n, k))
    size = PRECISION_BYTES[precision]
    out = OUTPUT_BYTES.get(precision, size)
    return 2.0 * batch * m * n * k, batch * ((m * k + k * n) * size + m * n * out)


def vector_work(op_kind: str, m, n, inputs, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of a vector op over m x n elements reading ``inputs`` tensors of that size, writing one."""
    elements = np.asarray(m, dtype=float) * np.asarray(n, dtype=float)
    return ELEMENT_FLOPS[op_kind] * elements, (np.asarray(inputs, dtype=float) + 1.0) * elements * PRECISION_BYTES[
        precision
    ]


def attention_work(batch, seq_len, heads, kv_heads, head_dim, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of causal prefill attention: QK^T and PV over the lower triangle; Q, K, V read, O written."""
    batch, seq_len, heads, kv_heads, head_dim = (
        np.asarray(v, dtype=float) for v in (batch, seq_len, heads, kv_heads, head_dim)
    )
    flops = 2.0 * batch * heads * seq_len * seq_len * head_dim  # 4·b·h·s²·d halved by the causal mask
    moved = batch * seq_len * head_dim * (2.0 * heads + 2.0 * kv_heads) * PRECISION_BYTES[precision]
    return flops, moved


def kernel_table(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` checked against the schema and put in its column order and types; ``where`` names it in errors."""
    missing = [c for c in KERNEL_COLUMNS if c not in frame.columns]
    if missing:
        raise ProfcastError(f"{where}: kernel table lacks column {missing[0]!r}; expected {', '.join(KERNEL_COLUMNS)}")
    table = frame.loc[:, list(KERNEL_COLUMNS)].reset_index(drop=True)
    for column, accepted in VOCABULARIES.items():
        table[column] = _vocabulary_column(table[column], accepted, where, column)
    for column in ("gpu", "op"):
        values = table[column].astype("category")
        empty = values.isna() | values.isin([""])
        if empty.any():
            raise ProfcastError(f"{where}: row {int(np.flatnonzero(empty.to_numpy())[0])}: {column} is empty")
        values = values.cat.remove_unused_categories()
        # categories as plain Python strings, whatever the reader's string type, so tables concatenate
        names = pd.Index([str(name) for name in values.cat.categories], dtype=object)
        table[column] = pd.Categorical.from_codes(values.cat.codes, categories=names)
    for column in SHAPE_COLUMNS:
        table[column] = _checked_numbers(table[column], where, column, minimum=1).astype("int64")
    table["kv_heads"] = pd.to_numeric(table["kv_heads"], errors="coerce").astype("float64")
    for column in ("flops", "bytes"):
        table[column] = _checked_numbers(table[column], where, column, minimum=0)
    table["latency_ms"] = _checked_numbers(table["latency_ms"], where, "latency_ms", minimum=0, strict=True)
    return table


def empty_kernel_table() -> pd.DataFrame:
    """A kernel table with no rows, in the schema's types."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in KERNEL_COLUMNS})
    for column in ("source", "gpu", "precision", "op_kind", "op", "phase", "split"):
        frame[column] = frame[column].astype("string")
    return kernel_table(frame, "empty table")


def concat_kernel_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several kernel tables as one (categoricals of open vocabularies re-formed over all of them)."""
    if not tables:
        return empty_kernel_table()
    open_columns = {
        column: pd.api.types.union_categoricals([t[column] for t in tables], ignore_order=True)
        for column in ("gpu", "op")
    }
    joined = pd.concat([t.drop(columns=list(open_columns)) for t in tables], ignore_index=True)
    for column, values in open_columns.items():
        joined[column] = values
    return joined.loc[:, list(KERNEL_COLUMNS)]


def _vocabulary_column(values: pd.Series, accepted: tuple, where: str, column: str) -> pd.Series:
    """``values`` as a categorical of exactly ``accepted``; the first value outside it is one line."""
    values = values.astype("category")  # checked per distinct value: fast on a million rows
    unknown = ~values.isin(accepted)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ProfcastError(f"{where}: row {row}: {column} {values.iloc[row]!r} is not one of {', '.join(accepted)}")
    return values.cat.set_categories(accepted)


def _checked_numbers(values: pd.Series, where: str, column: str, minimum: float, strict: bool = False) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    array = numbers.to_numpy()
    bad = ~np.isfinite(array) | (array <= minimum if strict else array < minimum)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        wanted = f"a number above {minimum:g}" if strict else f"a number of at least {minimum:g}"
        raise ProfcastError(f"{where}: row {row}: {column} {values.iloc[row]!r} is not {wanted}")
    return numbers
