"""One GPU kind as a plan needs it: peaks, memory, the node (GPUs per node, NVLink, network) and measured tables.

Two spellings of ``--gpu`` are read, told apart by their keys:

- AIConfigurator's ``systems/<gpu>.yaml`` (``gpu:`` in bytes/s and FLOP/s, ``node:``, ``data_dir``): the
  measured GEMM and NCCL tables under its ``data_dir`` are used where they exist.
- profcast's own figures file (docs/new-gpu.md) with a ``node:`` section added::

      fp32_tflops: 67
      bf16_tflops: 989
      memory_bandwidth_gbs: 3350
      memory_gb: 80
      node: {gpus_per_node: 8, intra_node_bw_gbs: 450, inter_node_bw_gbs: 50}

A file without interconnect figures cannot plan a multi-GPU run: one line says which keys are missing.
This is a small private reader; the node keys are spelled as the kernel-atlas branch's figures reader
(``profcast.ingest.device_figures``'s ``node:``) spells them, so that reader can replace it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from profcast.errors import ProfcastError

PEAK_KEYS = {"bf16": "bfloat16_tc_flops", "fp16": "bfloat16_tc_flops", "fp32": "float32_flops"}
OWN_PEAK_KEYS = {"bf16": "bf16_tflops", "fp16": "fp16_tflops", "fp32": "fp32_tflops"}
NODE_KEYS = ("num_gpus_per_node", "intra_node_bw", "inter_node_bw")
OWN_NODE_KEYS = ("gpus_per_node", "intra_node_bw_gbs", "inter_node_bw_gbs")


@dataclass(frozen=True)
class GpuSystem:
    """A GPU kind in SI units (FLOP/s, bytes/s, bytes) with its node and the measured tables it has."""

    name: str
    peaks: dict  # precision -> dense FLOP/s
    memory_bandwidth: float
    memory_bytes: float
    gpus_per_node: int
    intra_node_bandwidth: float  # per GPU, one direction
    inter_node_bandwidth: float  # per GPU, one direction
    link_latency_s: float = 1e-5
    gemm_table: Path | None = None
    nccl_table: Path | None = None
    reserved_bytes: float = 0.0  # the framework's and NCCL's own memory, where the file gives it
    source: str = ""
    extra: dict = field(default_factory=dict)

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision``; one line when the file has no figure for it."""
        if precision in self.peaks:
            return self.peaks[precision]
        if precision == "fp16" and "bf16" in self.peaks:
            return self.peaks["bf16"]
        raise ProfcastError(f"{self.source}: no peak FLOP/s for precision {precision!r} (has {', '.join(self.peaks)})")


def read_gpu_system(path) -> GpuSystem:
    """Read ``--gpu``: an AIConfigurator system YAML or profcast figures with a ``node:`` section."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ProfcastError(f"{path}: no such GPU figures file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProfcastError(f"{path}: not a readable YAML figures file ({first})") from None
    if not isinstance(content, dict):
        raise ProfcastError(
            f"{path}: GPU figures must be a mapping of keys (AIConfigurator systems YAML or profcast's)"
        )
    if isinstance(content.get("gpu"), dict):
        return _aiconfigurator_system(content, path)
    return _own_system(content, path)


def _aiconfigurator_system(content: dict, path: Path) -> GpuSystem:
    gpu, node = content["gpu"], content.get("node")
    missing = [key for key in NODE_KEYS if not isinstance(node, dict) or key not in node]
    if missing:
        raise ProfcastError(f"{path}: GPU without interconnect figures: node: needs {', '.join(missing)}")
    peaks = {precision: _positive(gpu, key, path) for precision, key in PEAK_KEYS.items() if key in gpu}
    tables = path.parent / str(content.get("data_dir", "")) if content.get("data_dir") else None
    misc = content.get("misc") or {}
    reserved = float(misc.get("other_mem", 0) or 0) + float(max((misc.get("nccl_mem") or {0: 0}).values()) or 0)
    return GpuSystem(
        name=path.stem,
        peaks=peaks,
        memory_bandwidth=_positive(gpu, "mem_bw", path),
        memory_bytes=_positive(gpu, "mem_capacity", path),
        gpus_per_node=int(_positive(node, "num_gpus_per_node", path)),
        intra_node_bandwidth=_positive(node, "intra_node_bw", path),
        inter_node_bandwidth=_positive(node, "inter_node_bw", path),
        link_latency_s=float(node.get("p2p_latency", 1e-5)),
        gemm_table=_first(tables, "gemm/*/*/gemm_perf.parquet"),
        nccl_table=_first(tables, "comm/nccl/*/nccl_perf.parquet"),
        reserved_bytes=reserved,
        source=str(path),
    )


def _own_system(content: dict, path: Path) -> GpuSystem:
    node = content.get("node")
    missing = [key for key in OWN_NODE_KEYS if not isinstance(node, dict) or key not in node]
    if missing:
        raise ProfcastError(f"{path}: GPU without interconnect figures: add node: with {', '.join(missing)}")
    for key in ("memory_bandwidth_gbs", "memory_gb"):
        if key not in content:
            raise ProfcastError(f"{path}: GPU figures are missing key {key!r}")
    peaks = {p: _positive(content, key, path) * 1e12 for p, key in OWN_PEAK_KEYS.items() if key in content}
    if not peaks:
        raise ProfcastError(f"{path}: GPU figures need a peak: one of {', '.join(OWN_PEAK_KEYS.values())}")
    return GpuSystem(
        name=str(content.get("name") or path.stem),
        peaks=peaks,
        memory_bandwidth=_positive(content, "memory_bandwidth_gbs", path) * 1e9,
        memory_bytes=_positive(content, "memory_gb", path) * 1e9,
        gpus_per_node=int(_positive(node, "gpus_per_node", path)),
        intra_node_bandwidth=_positive(node, "intra_node_bw_gbs", path) * 1e9,
        inter_node_bandwidth=_positive(node, "inter_node_bw_gbs", path) * 1e9,
        source=str(path),
    )


def _positive(content: dict, key: str, path: Path) -> float:
    value = content.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ProfcastError(f"{path}: key {key!r} must be a positive number, got {value!r}")
    return number


def _first(folder: Path | None, pattern: str) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None
