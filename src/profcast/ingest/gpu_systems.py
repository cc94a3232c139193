"""AIConfigurator's GPU figures (``systems/<system>.yaml``) read as they are, and one slug per GPU across sources.

AIConfigurator's file (bytes/s, FLOP/s, bytes, seconds; peaks are dense tensor-core figures)::

    gpu:  {mem_bw, mem_capacity, bfloat16_tc_flops, fp8_tc_flops, fp4_tc_flops, float32_tc_flops, power, ...}
    node: {num_gpus_per_node, intra_node_bw, inter_node_bw, pcie_bw, p2p_latency, num_gpus_per_rack, ...}

becomes ``DeviceFigures`` in profcast's units (TFLOPS, GB/s, GiB, W, µs) with its per-precision peaks
and ``NodeFigures``. It gives no L2 size, SM count, clock or FP32 vector peak: those stay None. Every
figure it does give must be a positive finite number; no tensor peak at all is refused too.
"""

from __future__ import annotations

from profcast.errors import ProfcastError

# AIConfigurator system (systems/<system>.yaml, systems/data/<system>/) -> the GPU's slug: NeuSight's
# slug (profcast.ingest.neusight.instance_slug) where it is the same GPU (same part, memory size and
# bandwidth), else the slug of the device name AIConfigurator's tables record.
SYSTEM_SLUGS = {
    "a100_pcie": "a100-80gb-pcie",  # NeuSight's "NVIDIA A100 80GB PCIe": 80 GB, 1.935 TB/s in both
    "a100_sxm": "a100-sxm4-80gb",  # device "NVIDIA A100-SXM4-80GB" (NeuSight's A100-SXM4 is the 40 GB part)
    "a30": "a30",
    "b200_sxm": "b200",  # device "NVIDIA B200"
    "b300_sxm": "b300",
    "b60": "arc-pro-b60",  # device "Intel(R) Arc(TM) Pro B60 Graphics"
    "gb200": "gb200",  # device "NVIDIA GB200"
    "gb300": "gb300",
    "h100_pcie": "h100-pcie",
    "h100_sxm": "h100-80gb-hbm3",  # NeuSight's "NVIDIA H100 80GB HBM3", the device name both record
    "h200_sxm": "h200",  # device "NVIDIA H200"
    "l4": "l4",  # NeuSight's "NVIDIA L4"
    "l40s": "l40s",  # device "NVIDIA L40S"
    "rtx_pro_6000_server": "rtx-pro-6000-blackwell-server",
}
# gpu: key -> precision of its peak (int8 is no training precision and is left out).
PEAK_KEYS = {
    "float32_tc_flops": "fp32",
    "tf32_tc_flops": "tf32",
    "bfloat16_tc_flops": "bf16",
    "float16_tc_flops": "fp16",
    "fp8_tc_flops": "fp8",
    "fp4_tc_flops": "fp4",
}
NODE_KEYS = {  # node: key -> (our field, factor to our unit)
    "num_gpus_per_node": ("gpus_per_node", 1.0),
    "intra_node_bw": ("intra_node_bw_gbs", 1e-9),
    "inter_node_bw": ("inter_node_bw_gbs", 1e-9),
    "pcie_bw": ("pcie_bw_gbs", 1e-9),
    "p2p_latency": ("p2p_latency_us", 1e6),
    "num_gpus_per_rack": ("gpus_per_rack", 1.0),
    "inter_rack_bw": ("inter_rack_bw_gbs", 1e-9),
    "inter_rack_latency": ("inter_rack_latency_us", 1e6),
}
REQUIRED_NODE = ("num_gpus_per_node", "intra_node_bw", "inter_node_bw")
GIB = 2**30


def is_aiconfigurator_system(content) -> bool:
    """Whether a parsed figures file is AIConfigurator's (a ``gpu:`` mapping of its keys: ``mem_bw``, ``*_tc_flops``)."""
    gpu = content.get("gpu") if isinstance(content, dict) else None
    return isinstance(gpu, dict) and any(key == "mem_bw" or str(key).endswith("_tc_flops") for key in gpu)


def system_figures(content: dict, source: str, system: str, positive) -> dict:
    """The keyword arguments of ``DeviceFigures`` (and the node's) from an AIConfigurator file's mapping.

    ``positive(value, source, key)`` checks one figure (a ProfcastError naming file and key otherwise).
    """
    gpu = content["gpu"]
    peaks = {
        precision: _unit(positive(gpu[key], source, f"gpu.{key}"), 1e-12)
        for key, precision in PEAK_KEYS.items()
        if key in gpu
    }
    if not peaks:
        raise ProfcastError(f"{source}: gpu: gives no tensor-core peak; expected one of {', '.join(PEAK_KEYS)}")
    for key in ("mem_bw", "mem_capacity"):
        if key not in gpu:
            raise ProfcastError(f"{source}: gpu: missing {key!r}")
    node = content.get("node")
    node_figures = None
    if node is not None:
        if not isinstance(node, dict):
            raise ProfcastError(f"{source}: node: is not a mapping")
        missing = [key for key in REQUIRED_NODE if key not in node]
        if missing:
            raise ProfcastError(f"{source}: node: missing {missing[0]!r}")
        node_figures = {
            ours: _unit(positive(node[key], source, f"node.{key}"), factor)
            for key, (ours, factor) in NODE_KEYS.items()
            if key in node
        }
    return {
        "name": SYSTEM_SLUGS.get(system, system.replace("_", "-")),
        "fp32_tflops": peaks.get("fp32"),
        "memory_bandwidth_gbs": _unit(positive(gpu["mem_bw"], source, "gpu.mem_bw"), 1e-9),
        "memory_gb": _unit(positive(gpu["mem_capacity"], source, "gpu.mem_capacity"), 1 / GIB),
        "l2_mb": None,
        "sm_count": None,
        "clock_mhz": None,
        "peaks": peaks,
        "power_w": positive(gpu["power"], source, "gpu.power") if "power" in gpu else None,
        "node": node_figures,
    }


def _unit(value: float, factor: float) -> float:
    """``value * factor`` without the float noise of the conversion (1935e9 * 1e-9 is 1935, not 1935.0000000000002)."""
    return float(f"{value * factor:.12g}")
