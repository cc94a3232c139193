"""NeuSight's per-kernel timing CSVs (``scripts/asplos/data/dataset{,_amd}/``) -> atlas kernel rows.

A file is one of NeuSight's when its header holds ``OPName``, ``Latency`` (ms) and ``Device``, with the
shapes of its operator: ``B, M, N, K`` (bmm, linear), ``B, H`` (element-wise, softmax, layer norm:
B rows of H elements) or the convolution's ``B, Input_Channel, Output_Channel, Kernel_Szie,
Input_Size, Stride, Padding`` (NeuSight's spelling). Every timing is FP32 with TF32 off, forward.
The split is NeuSight's: a file under a ``train`` folder is ``train``, under ``test`` is ``test``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.atlas.gpus import gpu_slug
from profcast.atlas.table import PRECISION_BYTES, gemm_work, kernel_table, vector_work
from profcast.errors import ProfcastError

HEADER = {"OPName", "Latency", "Device"}
MATRIX_COLUMNS = ("B", "M", "N", "K")
VECTOR_COLUMNS = ("B", "H")
CONV_COLUMNS = ("B", "Input_Channel", "Output_Channel", "Kernel_Szie", "Input_Size", "Stride", "Padding")
# NeuSight's operator -> (op_kind, op). "...u" ops take one tensor and a scalar (CUDAFunctorOnSelf).
OPERATORS = {
    "bmm": ("bmm", "bmm"),
    "linear": ("linear", "linear"),
    "conv": ("conv", "conv2d"),
    "softmax": ("softmax", "softmax"),
    "ln": ("layernorm", "layer_norm"),
}
BINARY_ELEMENTWISE = ("add", "mul", "div", "pow")
UNARY_ELEMENTWISE = ("addu", "mulu", "divu", "powu", "relu", "tanh", "gelu")
PRECISION = "fp32"  # PyTorch 2.1 (2.4.1 on AMD) with TF32 off, NeuSight's README


def is_neusight_kernel_header(names) -> bool:
    """Whether a CSV header is one of NeuSight's kernel tables."""
    names = set(names)
    return HEADER <= names and (
        set(MATRIX_COLUMNS) <= names or set(VECTOR_COLUMNS) <= names or set(CONV_COLUMNS) <= names
    )


def split_of(path) -> str:
    """NeuSight's split of a kernel file from its folders: ``train``, ``test``, else ``all``."""
    parts = [p.lower() for p in pd.io.common.stringify_path(path).replace("\\", "/").split("/")]
    for split in ("test", "train"):
        if split in parts:
            return split
    return "all"


def read_neusight_kernels(path, split: str | None = None) -> pd.DataFrame:
    """One NeuSight kernel CSV as atlas kernel rows; a truncated or damaged file is one line naming it."""
    header = csv_header(path)
    if not is_neusight_kernel_header(header):
        raise ProfcastError(f"{path}: not a NeuSight kernel table (needs OPName, Latency, Device and B,M,N,K or B,H)")
    shapes = [c for c in (*CONV_COLUMNS, "M", "N", "K", "H") if c in header]
    try:
        raw = pd.read_csv(path, usecols=["OPName", "Latency", "Device", *shapes], dtype={"OPName": str, "Device": str})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise ProfcastError(f"{path}: cannot be read as a NeuSight kernel table ({_first_line(error)})") from None
    if raw.empty:
        raise ProfcastError(f"{path}: NeuSight kernel table with no rows")
    for column in raw.columns:
        empty = raw[column].isna().to_numpy()
        if empty.any():
            line = int(np.flatnonzero(empty)[0]) + 2  # the header is line 1
            raise ProfcastError(f"{path}: line {line}: column {column} is empty (a truncated file?)")
    ops = raw["OPName"].str.strip().astype("category")  # mapped per distinct value below, not per row
    known = ops.isin(list(OPERATORS) + list(BINARY_ELEMENTWISE) + list(UNARY_ELEMENTWISE))
    if not known.all():
        line = int(np.flatnonzero(~known.to_numpy())[0]) + 2
        raise ProfcastError(f"{path}: line {line}: OPName {ops[~known].iloc[0]!r} is not an operator the atlas knows")
    frame = pd.DataFrame(
        {
            "source": "neusight",
            "gpu": raw["Device"].astype("category").map(gpu_slug),
            "precision": PRECISION,
            "op_kind": ops.map(lambda op: OPERATORS[op][0] if op in OPERATORS else "elementwise"),
            "op": ops.map(lambda op: OPERATORS[op][1] if op in OPERATORS else op),
            "phase": "forward",
            "kv_heads": np.nan,
            "latency_ms": pd.to_numeric(raw["Latency"], errors="coerce"),
            "split": split or split_of(path),
        }
    )
    _add_shapes_and_work(frame, raw, ops, str(path))
    return kernel_table(frame, str(path))


def _add_shapes_and_work(frame: pd.DataFrame, raw: pd.DataFrame, ops: pd.Series, where: str) -> None:
    def column(name):
        """One shape column as integers; a missing, non-numeric or non-positive value is one line."""
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = values.isna() | ((values < 0) if name == "Padding" else (values <= 0))  # no padding is a padding
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ProfcastError(f"{where}: line {line}: {name} {raw[name].iloc[line - 2]!r} is not a positive integer")
        return values.to_numpy(dtype=np.int64)

    kinds = frame["op_kind"].to_numpy()
    matrix = np.isin(kinds, ("bmm", "linear"))
    conv = kinds == "conv"
    vector = ~matrix & ~conv
    batch, m, n, k = (np.ones(len(frame), dtype=np.int64) for _ in range(4))
    flops, moved = np.zeros(len(frame)), np.zeros(len(frame))
    if matrix.any():
        b, mm, nn, kk = (column(c)[matrix] for c in MATRIX_COLUMNS)
        batch[matrix], m[matrix], n[matrix], k[matrix] = b, mm, nn, kk
        flops[matrix], moved[matrix] = gemm_work(b, mm, nn, kk, PRECISION)
    if conv.any():
        b, c_in, c_out, kernel, size, stride, padding = (column(c)[conv] for c in CONV_COLUMNS)
        side = (size + 2 * padding - kernel) // stride + 1
        batch[conv], m[conv], n[conv], k[conv] = b, side * side, c_out, c_in * kernel * kernel
        flops[conv] = 2.0 * b * side * side * c_out * c_in * kernel * kernel
        moved[conv] = (b * c_in * size * size + c_out * c_in * kernel * kernel + b * c_out * side * side) * (
            PRECISION_BYTES[PRECISION]
        )
    if vector.any():
        rows, width = column("B")[vector], column("H")[vector]
        m[vector], n[vector] = rows, width
        inputs = np.where(ops[vector].isin(BINARY_ELEMENTWISE).to_numpy(), 2, 1)
        for kind in ("elementwise", "softmax", "layernorm"):
            chosen = kinds[vector] == kind
            if chosen.any():
                where_kind = np.flatnonzero(vector)[chosen]
                flops[where_kind], moved[where_kind] = vector_work(
                    kind, rows[chosen], width[chosen], inputs[chosen], PRECISION
                )
    frame["batch"], frame["m"], frame["n"], frame["k"] = batch, m, n, k
    frame["flops"], frame["bytes"] = flops, moved


def csv_header(path) -> list[str]:
    """The column names of a CSV's first line."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"{path}: cannot be read ({error})") from None
    return [name.strip() for name in first.rstrip("\r\n").split(",")]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
