"""A minimal reader of the kernel tables for benchmarks/kernels.py, in the atlas's agreed schema.

One row per measured kernel call: ``source``, ``gpu``, ``precision``, ``op_kind``, ``op``, ``phase``,
``batch``, ``m``, ``n``, ``k``, ``kv_heads``, ``flops``, ``bytes``, ``latency_ms``, ``split``. It reads
NeuSight's NVIDIA kernel CSVs (``scripts/asplos/data/dataset/{train/collect,test}``) and
AIConfigurator's bf16/fp8 GEMM and bf16 prefill-attention parquet tables, plus both projects' GPU
figures. The atlas package (issue 30, items 1-3) is the reader for users; this one stays small and
only serves the benchmark until the two are merged.
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from profcast.ingest.device_figures import DeviceFigures
from profcast.ingest.gpu_spec_sheet import SPEC_SHEET

NEUSIGHT_KERNELS = Path("scripts") / "asplos" / "data" / "dataset"
AIC_SYSTEMS = Path("systems")
ELEMENTWISE_OPS = ("add", "mul", "pow", "div", "addu", "mulu", "powu", "divu", "relu", "gelu", "tanh")
BINARY_OPS = ("add", "mul", "pow", "div")  # two tensors in; the *u ops take a scalar
NEUSIGHT_KINDS = {"bmm": "bmm", "linear": "linear", "softmax": "softmax", "ln": "layernorm"}
NEUSIGHT_KINDS |= {op: "elementwise" for op in ELEMENTWISE_OPS}
ELEMENT_FLOPS = {"softmax": 5.0, "layernorm": 8.0, "elementwise": 1.0}
PRECISION_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp4": 0.5}
AIC_PRECISIONS = {"bfloat16": "bf16", "fp8": "fp8"}  # fp8_block and nvfp4 are left for later
# Where this reader's slugs differ from the spec sheet's (ingest/gpu_spec_sheet.py: SM count and L2 of the
# AIConfigurator GPUs, which its systems/<gpu>.yaml do not give).
SPEC_SHEET_SLUGS = {"arc-pro-b60-graphics": "arc-pro-b60"}


def gpu_slug(device: str) -> str:
    """A device string as a canonical slug: vendor words dropped (``NVIDIA H100 80GB HBM3`` -> ``h100-80gb-hbm3``)."""
    name = re.sub(r"^(NVIDIA|Tesla|AMD Instinct|AMD|Intel\(R\))\s+", "", device.strip())
    name = name.replace("(TM)", "")
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def neusight_kernels(folder) -> pd.DataFrame:
    """NeuSight's NVIDIA kernel timings: the training sweeps (split ``train``) and the paired test set (``test``)."""
    root = Path(folder) / NEUSIGHT_KERNELS
    frames = []
    for path in sorted((root / "train" / "collect").glob("*/p2.1.0/*.csv")):
        if path.parts[-3] in NEUSIGHT_KINDS:
            frames.append(pd.read_csv(path).assign(split="train"))
    for name in ("bmm", "linear", "vec"):  # vec holds elem, ln and softmax together
        frames.append(pd.read_csv(root / "test" / f"{name}.csv").assign(split="test"))
    raw = pd.concat(frames, ignore_index=True)
    raw = raw[raw["OPName"].isin(list(NEUSIGHT_KINDS))]
    kind = raw["OPName"].map(NEUSIGHT_KINDS)
    matrix = kind.isin(["bmm", "linear"])
    batch = np.where(matrix, raw["B"], 1).astype(float)
    m = np.where(matrix, raw["M"], raw["B"]).astype(float)  # vector ops: B rows of H elements
    n = np.where(matrix, raw["N"], raw["H"]).astype(float)
    k = np.where(matrix, raw["K"], np.nan).astype(float)
    table = pd.DataFrame(
        {
            "source": "neusight",
            "gpu": raw["Device"].map(gpu_slug),
            "precision": "fp32",
            "op_kind": kind,
            "op": raw["OPName"],
            "phase": "forward",
            "batch": batch,
            "m": m,
            "n": n,
            "k": k,
            "kv_heads": np.nan,
            "latency_ms": raw["Latency"].astype(float),
            "split": raw["split"],
        }
    )
    return _with_work(table).drop_duplicates().reset_index(drop=True)


def aiconfigurator_kernels(folder) -> pd.DataFrame:
    """AIConfigurator's GEMMs (bf16, fp8) and prefill attention (bf16, KV cache bf16, no window), split ``all``."""
    root = Path(folder) / AIC_SYSTEMS / "data"
    frames = []
    for path in sorted(glob.glob(str(root / "*" / "gemm" / "*" / "*" / "gemm_perf.parquet"))):
        raw = pd.read_parquet(path)
        raw = raw[raw["gemm_dtype"].isin(list(AIC_PRECISIONS))]
        frames.append(
            pd.DataFrame(
                {
                    "gpu": raw["device"].map(gpu_slug),
                    "precision": raw["gemm_dtype"].map(AIC_PRECISIONS),
                    "op_kind": "gemm",
                    "op": "linear",
                    "batch": 1.0,
                    "m": raw["m"].astype(float),
                    "n": raw["n"].astype(float),
                    "k": raw["k"].astype(float),
                    "kv_heads": np.nan,
                    "latency_ms": raw["latency"].astype(float),
                }
            )
        )
    for path in sorted(glob.glob(str(root / "*" / "attention" / "*" / "*" / "context_attention_perf.parquet"))):
        raw = pd.read_parquet(path)
        keep = raw["kv_cache_dtype"].eq("bfloat16")
        if "window_size" in raw:
            keep &= raw["window_size"].eq(0)
        raw = raw[keep]
        frames.append(
            pd.DataFrame(
                {
                    "gpu": raw["device"].map(gpu_slug),
                    "precision": "bf16",
                    "op_kind": "attention",
                    "op": "attention",
                    "batch": raw["batch_size"].astype(float),
                    "m": raw["isl"].astype(float),
                    "n": raw["num_heads"].astype(float),
                    "k": raw["head_dim"].astype(float),
                    "kv_heads": raw["num_key_value_heads"].astype(float),
                    "latency_ms": raw["latency"].astype(float),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True).assign(source="aiconfigurator", phase="forward", split="all")
    # several kernels per shape (vendor variants): the fastest is what a framework would pick
    keys = ["source", "gpu", "precision", "op_kind", "op", "phase", "batch", "m", "n", "k", "kv_heads", "split"]
    table = table.groupby(keys, dropna=False, as_index=False)["latency_ms"].min()
    return _with_work(table)


def _with_work(table: pd.DataFrame) -> pd.DataFrame:
    """FLOPs and bytes of each row from its kind and shapes (textbook counts, as regressors/call_costs)."""
    width = table["precision"].map(PRECISION_BYTES).astype(float)
    b, m, n, k = (table[c].to_numpy(dtype=float) for c in ("batch", "m", "n", "k"))
    kind = table["op_kind"].to_numpy()
    matrix = np.isin(kind, ["bmm", "linear", "gemm"])
    elements = b * m * n
    inputs = np.where(np.isin(table["op"], BINARY_OPS), 2.0, 1.0)
    flops = np.where(matrix, 2 * b * m * n * k, table["op_kind"].map(ELEMENT_FLOPS).fillna(1.0) * elements)
    moved = np.where(
        matrix, b * (m * k + k * n) * width + b * m * n * np.maximum(width, 2), (inputs + 1) * elements * width
    )
    # prefill attention, causal: QK^T and PV over half the (isl x isl) scores; Q, K, V read, O written once
    attention = kind == "attention"
    heads, kv = n, table["kv_heads"].to_numpy(dtype=float)
    flops = np.where(attention, 2.0 * b * heads * m * m * k, flops)
    moved = np.where(attention, b * m * k * (2 * heads + 2 * kv) * width, moved)
    return table.assign(flops=flops, bytes=moved)


def neusight_figures(folder) -> dict[str, DeviceFigures]:
    """NeuSight's test-set device configs (every GPU of the kernel tables), by slug; FP32 peaks only."""
    figures = {}
    for path in sorted((Path(folder) / NEUSIGHT_KERNELS / "test" / "device_configs").glob("*.json")):
        config = json.loads(path.read_text())
        slug = gpu_slug(config["Device"])
        figures[slug] = DeviceFigures(
            name=slug,
            fp32_tflops=config["SingleFLOPs"] / 1e3,
            memory_bandwidth_gbs=float(config["Mem_Bw"]),
            memory_gb=float(config["Dev_Mem"]),
            l2_mb=float(config["L2Cache"]),
            sm_count=float(config["Num_Sm"]),
            clock_mhz=float(config["Freq"]),
        )
    return figures


def aiconfigurator_figures(folder) -> dict[str, DeviceFigures]:
    """The figures of the AIConfigurator GPUs with tables, by slug: bf16/fp8 peaks, bandwidth, power."""
    figures = {}
    for path in sorted((Path(folder) / AIC_SYSTEMS).glob("*.yaml")):
        gpu = yaml.safe_load(path.read_text())["gpu"]
        tables = sorted(
            glob.glob(str(Path(folder) / AIC_SYSTEMS / "data" / path.stem / "gemm" / "*" / "*" / "*.parquet"))
        )
        if not tables:
            continue
        slug = gpu_slug(pd.read_parquet(tables[0], columns=["device"])["device"].iloc[0])
        sms, l2, _ = SPEC_SHEET[SPEC_SHEET_SLUGS.get(slug, slug)]
        bf16 = gpu["bfloat16_tc_flops"] / 1e12
        peaks = {"bf16": bf16, "fp16": bf16, "fp8": gpu.get("fp8_tc_flops", gpu["bfloat16_tc_flops"]) / 1e12}
        figures[slug] = DeviceFigures(
            name=slug,
            fp32_tflops=gpu.get("float32_tc_flops", np.nan) / 1e12,  # unknown: no vector op is measured there
            memory_bandwidth_gbs=gpu["mem_bw"] / 1e9,
            memory_gb=gpu["mem_capacity"] / 1e9,
            l2_mb=float(l2),
            sm_count=float(sms),
            clock_mhz=np.nan,
            peaks=peaks,
        )
        object.__setattr__(figures[slug], "power_w", float(gpu.get("power", np.nan)))
    return figures
