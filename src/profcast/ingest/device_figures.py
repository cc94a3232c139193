"""A GPU's own figures (peaks per precision, memory, power, node interconnect) as data, one file per GPU.

Three spellings are read, told apart by their keys:

- NeuSight's device configs (``scripts/asplos/data/device_configs/<GPU>.json``): ``Device``,
  ``SingleFLOPs`` (GFLOPS; AMD files ``SingleFLOPsMM`` for matrix and ``SingleFLOPsVEC`` for vector
  units), ``Mem_Bw`` (GB/s), ``Dev_Mem`` (GB), ``L2Cache`` (MB), ``Num_Sm``, ``Core_Per_SM``, ``Freq`` (MHz).
- profcast's own YAML or JSON, written from a spec sheet (docs/new-gpu.md)::

      name: h200-141gb               # the instance name forecasts use
      fp32_tflops: 67                # peak FP32 (vector units)
      fp32_matrix_tflops: 67         # optional: peak FP32 of matrix units (default fp32_tflops)
      fp16_tflops: 989               # optional, per precision: fp16, bf16, tf32
      memory_bandwidth_gbs: 4800
      memory_gb: 141
      l2_mb: 50
      sm_count: 132                  # SMs (NVIDIA) or CUs (AMD)
      clock_mhz: 1980
      fp8_tflops: 1979               # optional: fp8, fp4 peaks; power_w (board power, W)
      node: {gpus_per_node: 8, intra_node_bw_gbs: 450, inter_node_bw_gbs: 50}   # optional, see NodeFigures

- AIConfigurator's ``systems/<system>.yaml`` (``gpu:`` and ``node:`` in bytes/s and FLOP/s), read by
  ``profcast.ingest.gpu_systems``: peaks per precision, memory, power and the node, no L2/SM/clock.

NeuSight's configs give no power: ``PUBLISHED_POWER_W`` adds the board power of the GPUs whose figure
a vendor published. Every figure given must be a positive finite number; anything else is one line
naming the file and key.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from profcast.errors import ProfcastError
from profcast.ingest.gpu_systems import is_aiconfigurator_system, system_figures
from profcast.ingest.neusight import instance_slug

REQUIRED = ("fp32_tflops", "memory_bandwidth_gbs", "memory_gb", "l2_mb", "sm_count", "clock_mhz")
OPTIONAL_PEAKS = ("fp32_matrix_tflops", "fp16_tflops", "bf16_tflops", "tf32_tflops", "fp8_tflops", "fp4_tflops")
OPTIONAL = ("power_w", "node")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4")
# A call's dtype as PyTorch or the atlas names it -> the precision of its peak.
DTYPE_PRECISIONS = {
    "float32": "fp32", "float": "fp32", "fp32": "fp32", "tf32": "tf32", "bfloat16": "bf16", "bf16": "bf16",
    "float16": "fp16", "half": "fp16", "fp16": "fp16", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "fp8": "fp8",
    "fp4": "fp4", "float4_e2m1fn_x2": "fp4",
}  # fmt: skip
# Board power (W) of NeuSight's GPUs, as the vendor published it (NeuSight's configs have none).
PUBLISHED_POWER_W = {
    "l4": 72,  # NVIDIA L4 datasheet; AIConfigurator systems/l4.yaml says 72 too
    "h100-80gb-hbm3": 700,  # NVIDIA H100 datasheet (SXM5); AIConfigurator systems/h100_sxm.yaml
    "a100-80gb-pcie": 300,  # NVIDIA A100 datasheet (80GB PCIe); AIConfigurator systems/a100_pcie.yaml
    "a100-pcie-40gb": 250,  # NVIDIA A100 datasheet (40GB PCIe)
    "a100-sxm4-40gb": 400,  # NVIDIA A100 datasheet (SXM4)
    "v100-pcie-32gb": 250,  # NVIDIA V100 datasheet (PCIe)
    "t4": 70,  # NVIDIA T4 datasheet
    "p100-pcie-16gb": 250,  # NVIDIA Tesla P100 datasheet (PCIe)
    "mi100": 300,  # AMD Instinct MI100 datasheet (TBP)
    "mi210": 300,  # AMD Instinct MI210 datasheet (TBP)
}
NODE_FIELDS = (
    "gpus_per_node", "intra_node_bw_gbs", "inter_node_bw_gbs", "pcie_bw_gbs", "p2p_latency_us",
    "gpus_per_rack", "inter_rack_bw_gbs", "inter_rack_latency_us",
)  # fmt: skip
# NeuSight's key -> (our key, factor to our unit).
NEUSIGHT_KEYS = {
    "SingleFLOPs": ("fp32_tflops", 1e-3),
    "SingleFLOPsVEC": ("fp32_tflops", 1e-3),
    "SingleFLOPsMM": ("fp32_matrix_tflops", 1e-3),
    "Mem_Bw": ("memory_bandwidth_gbs", 1.0),
    "Dev_Mem": ("memory_gb", 1.0),
    "L2Cache": ("l2_mb", 1.0),
    "Num_Sm": ("sm_count", 1.0),
    "Freq": ("clock_mhz", 1.0),
}
DEVICE_CONFIGS = Path("scripts") / "asplos" / "data" / "device_configs"
# The same files (byte for byte) beside the kernel tables: what a download of those brings.
TEST_DEVICE_CONFIGS = Path("scripts") / "asplos" / "data" / "dataset" / "test" / "device_configs"
FORMAT = (
    "keys " + ", ".join(REQUIRED) + " (docs/new-gpu.md), a NeuSight device config or an AIConfigurator systems/*.yaml"
)


@dataclass(frozen=True)
class NodeFigures:
    """A node of this GPU: GPUs per node, per-GPU one-direction bandwidths (GB/s), latencies (µs); None if not given."""

    gpus_per_node: int
    intra_node_bw_gbs: float  # NVLink (or PCIe where the node has none)
    inter_node_bw_gbs: float  # the network, per GPU
    pcie_bw_gbs: float | None = None
    p2p_latency_us: float | None = None
    gpus_per_rack: int | None = None  # NVL72 racks (GB200, GB300)
    inter_rack_bw_gbs: float | None = None
    inter_rack_latency_us: float | None = None


@dataclass(frozen=True)
class DeviceFigures:
    """One GPU's figures in fixed units: TFLOPS, GB/s, GB, MB, count, MHz, W; None where the file gives none."""

    name: str
    fp32_tflops: float | None
    memory_bandwidth_gbs: float
    memory_gb: float
    l2_mb: float | None
    sm_count: float | None
    clock_mhz: float | None
    fp32_matrix_tflops: float | None = None
    peaks: dict = field(default_factory=dict)  # per precision: {"bf16": TFLOPS, "fp8": TFLOPS, ...}
    power_w: float | None = None
    node: NodeFigures | None = None

    def peak_flops(self, matrix: bool, dtype: str = "float32") -> float:
        """Peak FLOP/s for a call on matrix (matmul, conv) or vector units at ``dtype`` (FP32's if none given)."""
        precision = DTYPE_PRECISIONS.get(str(dtype).removeprefix("torch."))
        if precision in self.peaks and precision != "fp32":
            return self.peaks[precision] * 1e12
        if matrix and self.fp32_matrix_tflops:
            return self.fp32_matrix_tflops * 1e12
        fp32 = self.fp32_tflops or self.peaks.get("fp32")
        if not fp32:
            raise ProfcastError(
                f"GPU figures of {self.name}: no {precision or dtype} peak and no FP32 peak to fall back on; "
                f"it gives {', '.join(sorted(self.peaks)) or 'none'}"
            )
        return fp32 * 1e12

    def peak_tflops(self, precision: str) -> float | None:
        """The figures' own peak at ``precision`` (fp32, tf32, bf16, fp16, fp8, fp4) in TFLOPS; None if not given."""
        if precision not in PRECISIONS:
            raise ProfcastError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
        if precision == "fp32":
            return self.fp32_matrix_tflops or self.fp32_tflops or self.peaks.get("fp32")
        return self.peaks.get(precision)

    def missing(self, keys) -> list[str]:
        """The ``keys`` these figures lack, in the order given."""
        return [key for key in keys if getattr(self, key) is None]

    def require(self, keys, purpose: str) -> None:
        """Refuse figures lacking any of ``keys`` (one line naming the first and ``purpose``)."""
        missing = self.missing(keys)
        if missing:
            raise ProfcastError(f"GPU figures of {self.name}: no {missing[0]}, which {purpose} needs")

    @property
    def bandwidth(self) -> float:
        """Memory bandwidth in bytes/s."""
        return self.memory_bandwidth_gbs * 1e9

    def as_dict(self) -> dict:
        """The figures as a plain dict (profcast's own spelling)."""
        return asdict(self)


def read_device_figures(path, name: str | None = None) -> DeviceFigures:
    """One figures file (YAML or JSON, ours or NeuSight's); ``name`` defaults to its ``name`` or the file's slug."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"{path}: cannot read the GPU figures file ({error})") from None
    try:
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ProfcastError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})") from None
    if not isinstance(content, dict):
        raise ProfcastError(f"{path}: expected a mapping of GPU figures; {FORMAT}")
    if is_aiconfigurator_system(content):
        values = system_figures(content, str(path), path.stem, _positive)
        node = values.pop("node")
        figures = DeviceFigures(**values, node=None if node is None else _node(node, str(path)))
        return replace(figures, name=name) if name else figures
    return device_figures_from_mapping(content, str(path), name or instance_slug(path.stem))


def device_figures_from_mapping(content: dict, source: str, default_name: str) -> DeviceFigures:
    """Figures from a parsed mapping; ``source`` names it in errors."""
    if any(key in content for key in NEUSIGHT_KEYS):
        figures = {}
        for key, (ours, factor) in NEUSIGHT_KEYS.items():
            if key in content:
                figures[ours] = _positive(content[key], source, key) * factor
        name = default_name
        if name in PUBLISHED_POWER_W:
            figures["power_w"] = float(PUBLISHED_POWER_W[name])
    else:
        figures = dict(content)
        name = str(content.get("name") or default_name)
        figures.pop("name", None)
    unknown = set(figures) - set(REQUIRED) - set(OPTIONAL_PEAKS) - set(OPTIONAL)
    if unknown:
        raise ProfcastError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected {FORMAT}")
    missing = [key for key in REQUIRED if key not in figures]
    if missing:
        raise ProfcastError(f"{source}: missing {missing[0]!r}; expected {FORMAT}")
    values = {key: _positive(figures[key], source, key) for key in REQUIRED}
    peaks = {
        key.removesuffix("_tflops"): _positive(figures[key], source, key)
        for key in OPTIONAL_PEAKS[1:]
        if key in figures
    }
    matrix = figures.get("fp32_matrix_tflops")
    matrix = None if matrix is None else _positive(matrix, source, "fp32_matrix_tflops")
    power = figures.get("power_w")
    power = None if power is None else _positive(power, source, "power_w")
    node = None if figures.get("node") is None else _node(figures["node"], source)
    return DeviceFigures(name=name, fp32_matrix_tflops=matrix, peaks=peaks, power_w=power, node=node, **values)


def _node(content, source: str) -> NodeFigures:
    if not isinstance(content, dict):
        raise ProfcastError(f"{source}: node is not a mapping; expected keys {', '.join(NODE_FIELDS)}")
    unknown = set(content) - set(NODE_FIELDS)
    if unknown:
        raise ProfcastError(f"{source}: unknown node key {sorted(unknown)[0]!r}; expected {', '.join(NODE_FIELDS)}")
    for key in NODE_FIELDS[:3]:
        if key not in content:
            raise ProfcastError(f"{source}: node: missing {key!r}")
    values = {key: _positive(value, source, f"node.{key}") for key, value in content.items()}
    for key in ("gpus_per_node", "gpus_per_rack"):
        if key in values:
            if values[key] != int(values[key]):
                raise ProfcastError(f"{source}: node.{key} {values[key]!r} is not a whole number of GPUs")
            values[key] = int(values[key])
    return NodeFigures(**values)


def _positive(value, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProfcastError(f"{source}: {key} {value!r} is not a positive number")
    return float(value)


def neusight_device_figures(folder) -> dict[str, DeviceFigures]:
    """Every device config of a NeuSight folder, by instance slug (``h100-80gb-hbm3``)."""
    folder = Path(folder)
    configs = next((folder / sub for sub in (DEVICE_CONFIGS, TEST_DEVICE_CONFIGS) if (folder / sub).is_dir()), folder)
    files = sorted(configs.glob("*.json"))
    if not files:
        raise ProfcastError(f"{folder}: no device configs; expected {DEVICE_CONFIGS}/<GPU>.json")
    figures = [read_device_figures(path) for path in files]
    return {f.name: f for f in figures}
