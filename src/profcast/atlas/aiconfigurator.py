"""AIConfigurator's measured tables (``systems/data/<system>/{gemm,attention,comm}/...parquet``) -> atlas rows.

Told apart by their columns: ``gemm_dtype`` (GEMMs: m, n, k), ``attn_dtype`` (prefill attention:
batch_size, isl, num_heads, num_key_value_heads, head_dim), ``nccl_dtype`` (collectives: op_name,
num_gpus, message_size). Latency is in ms. Rows kept, and why:

- GEMMs: where several kernels were timed for one shape and format (fp8_block on Hopper has three),
  the fastest, the one a tuned framework would run.
- Attention: the training-like rows only: no sliding window (``window_size`` 0) and the KV cache in
  the attention's own precision (an fp8 KV cache is an inference choice); again the fastest kernel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from profcast.atlas.collectives import DTYPES, collective_table
from profcast.atlas.gpus import gpu_slug, system_slug
from profcast.atlas.table import attention_work, gemm_work, kernel_table
from profcast.errors import ProfcastError

KINDS = {"gemm_dtype": "gemm", "attn_dtype": "attention", "nccl_dtype": "collectives"}
REQUIRED = {
    "gemm": ("device", "gemm_dtype", "m", "n", "k", "latency"),
    "attention": ("device", "attn_dtype", "kv_cache_dtype", "batch_size", "isl", "num_heads", "num_key_value_heads",
                  "head_dim", "latency"),
    "collectives": ("device", "op_name", "nccl_dtype", "num_gpus", "message_size", "latency"),
}  # fmt: skip
# gemm_dtype -> (precision, op). bf16/fp16 are torch.nn.functional.linear; the others vendor kernels.
GEMM_FORMATS = {
    "float32": ("fp32", "linear"),
    "bfloat16": ("bf16", "linear"),
    "float16": ("fp16", "linear"),
    "fp8": ("fp8", "fp8_scaled_mm"),
    "fp8_block": ("fp8", "fp8_block"),
    "nvfp4": ("fp4", "nvfp4"),
}
ATTENTION_PRECISIONS = {"bfloat16": "bf16", "float16": "fp16", "fp8": "fp8"}


def aiconfigurator_kind(columns) -> str | None:
    """``gemm``, ``attention`` or ``collectives`` for an AIConfigurator table's columns, None if it is none."""
    return next((kind for key, kind in KINDS.items() if key in set(columns)), None)


def gpu_of(path, device: str) -> str:
    """The slug of a table's GPU: its system folder (``systems/data/<system>/``) if known, else its device name."""
    parts = str(path).replace("\\", "/").split("/")
    for index, part in enumerate(parts[:-1]):
        if part == "data" and system_slug(parts[index + 1]):
            return system_slug(parts[index + 1])
    return gpu_slug(device)


def read_aiconfigurator_table(path) -> tuple[str, pd.DataFrame]:
    """(kind, rows) of one AIConfigurator parquet: kernel rows for gemm and attention, collective rows for comm."""
    try:
        columns = pq.read_schema(path).names
        kind = aiconfigurator_kind(columns)
        if kind is None:
            raise ProfcastError(f"{path}: not an AIConfigurator table (no gemm_dtype, attn_dtype or nccl_dtype column)")
        missing = [c for c in REQUIRED[kind] if c not in columns]
        if missing:
            raise ProfcastError(f"{path}: AIConfigurator {kind} table lacks column {missing[0]!r}")
        wanted = [c for c in (*REQUIRED[kind], "window_size") if c in columns]
        raw = pq.read_table(path, columns=wanted).to_pandas()
    except ProfcastError:
        raise
    except Exception as error:  # pyarrow raises several types for a truncated or damaged file
        raise ProfcastError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]})") from None
    if raw.empty:
        raise ProfcastError(f"{path}: AIConfigurator {kind} table with no rows")
    devices = raw["device"].astype("string").unique()
    if len(devices) != 1:
        raise ProfcastError(f"{path}: holds {len(devices)} devices ({', '.join(map(str, devices[:3]))}); expected one")
    gpu = gpu_of(path, str(devices[0]))
    reader = {"gemm": _gemm_rows, "attention": _attention_rows, "collectives": _collective_rows}[kind]
    return kind, reader(raw, gpu, str(path))


def _precision(values: pd.Series, accepted: dict, where: str, column: str) -> pd.Series:
    values = values.astype("string")
    unknown = ~values.isin(list(accepted))
    if unknown.any():
        raise ProfcastError(
            f"{where}: {column} {values[unknown].iloc[0]!r} is not a precision the atlas knows ({', '.join(accepted)})"
        )
    return values


def _gemm_rows(raw: pd.DataFrame, gpu: str, where: str) -> pd.DataFrame:
    formats = _precision(raw["gemm_dtype"], GEMM_FORMATS, where, "gemm_dtype")
    # the fastest kernel per shape and format
    raw = raw.assign(gemm_dtype=formats).groupby(["gemm_dtype", "m", "n", "k"], as_index=False)["latency"].min()
    formats = raw["gemm_dtype"].astype("category")  # mapped per distinct value, not per row
    precision = formats.map({f: p for f, (p, _) in GEMM_FORMATS.items()})
    op = formats.map({f: op for f, (_, op) in GEMM_FORMATS.items()})
    shapes = {"batch": 1, "m": raw["m"], "n": raw["n"], "k": raw["k"], "kv_heads": np.nan}
    return _kernel_rows(
        gpu, where, precision, "gemm", op, shapes, raw["latency"],
        lambda rows, name: gemm_work(1, rows["m"], rows["n"], rows["k"], name),
    )  # fmt: skip


def _attention_rows(raw: pd.DataFrame, gpu: str, where: str) -> pd.DataFrame:
    attn = _precision(raw["attn_dtype"], ATTENTION_PRECISIONS, where, "attn_dtype")
    keep = attn == raw["kv_cache_dtype"].astype("string")
    if "window_size" in raw:
        keep &= raw["window_size"] == 0
    shape = ["attn_dtype", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"]
    raw = raw.assign(attn_dtype=attn)[keep.to_numpy()].groupby(shape, as_index=False)["latency"].min()
    precision = raw["attn_dtype"].astype("category").map(ATTENTION_PRECISIONS)
    shapes = {"batch": raw["batch_size"], "m": raw["isl"], "n": raw["num_heads"], "k": raw["head_dim"]}
    shapes["kv_heads"] = raw["num_key_value_heads"].astype(float)
    return _kernel_rows(
        gpu, where, precision, "attention", "prefill_attention", shapes, raw["latency"],
        lambda rows, name: attention_work(rows["batch"], rows["m"], rows["n"], rows["kv_heads"], rows["k"], name),
    )  # fmt: skip


def _kernel_rows(gpu: str, where: str, precision, op_kind: str, op, shapes: dict, latency, work) -> pd.DataFrame:
    """Forward kernel rows of one table, with ``flops`` and ``bytes`` from ``work(rows, precision)`` per precision."""
    frame = pd.DataFrame(
        {"source": "aiconfigurator", "gpu": gpu, "precision": precision, "op_kind": op_kind, "op": op}
        | {"phase": "forward", **shapes, "latency_ms": latency, "split": "all"}
    )
    frame["flops"], frame["bytes"] = 0.0, 0.0
    for name in precision.unique():
        chosen = (precision == name).to_numpy()
        frame.loc[chosen, "flops"], frame.loc[chosen, "bytes"] = work(frame.loc[chosen], name)
    return kernel_table(frame, where)


def _collective_rows(raw: pd.DataFrame, gpu: str, where: str) -> pd.DataFrame:
    dtype = _precision(raw["nccl_dtype"], DTYPES, where, "nccl_dtype")
    frame = pd.DataFrame(
        {
            "source": "aiconfigurator",
            "gpu": gpu,
            "op": raw["op_name"].astype("string"),
            "num_gpus": raw["num_gpus"],
            "message_bytes": raw["message_size"],
            "dtype": dtype.map(DTYPES),
            "latency_ms": raw["latency"],
        }
    )
    return collective_table(frame, where)
