"""A GPU's own figures (peak FLOPS, memory bandwidth and size, L2, SM count, clock) as data, one file per GPU.

Two spellings are read, told apart by their keys:

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

Every figure must be a positive finite number; anything else is one line naming the file and key.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from profcast.errors import ProfcastError
from profcast.ingest.neusight import instance_slug

REQUIRED = ("fp32_tflops", "memory_bandwidth_gbs", "memory_gb", "l2_mb", "sm_count", "clock_mhz")
OPTIONAL_PEAKS = ("fp32_matrix_tflops", "fp16_tflops", "bf16_tflops", "tf32_tflops")
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
FORMAT = "keys " + ", ".join(REQUIRED) + " (docs/new-gpu.md), or a NeuSight device config"


@dataclass(frozen=True)
class DeviceFigures:
    """One GPU's figures in fixed units: TFLOPS, GB/s, GB, MB, count, MHz."""

    name: str
    fp32_tflops: float
    memory_bandwidth_gbs: float
    memory_gb: float
    l2_mb: float
    sm_count: float
    clock_mhz: float
    fp32_matrix_tflops: float | None = None
    peaks: dict = field(default_factory=dict)  # other precisions: {"fp16": TFLOPS, ...}

    def peak_flops(self, matrix: bool, dtype: str = "float32") -> float:
        """Peak FLOP/s for a call on matrix (matmul, conv) or vector units at ``dtype``."""
        precision = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(dtype)
        if precision in self.peaks:
            return self.peaks[precision] * 1e12
        if matrix and self.fp32_matrix_tflops:
            return self.fp32_matrix_tflops * 1e12
        return self.fp32_tflops * 1e12

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
    return device_figures_from_mapping(content, str(path), name or instance_slug(path.stem))


def device_figures_from_mapping(content: dict, source: str, default_name: str) -> DeviceFigures:
    """Figures from a parsed mapping; ``source`` names it in errors."""
    if any(key in content for key in NEUSIGHT_KEYS):
        figures = {}
        for key, (ours, factor) in NEUSIGHT_KEYS.items():
            if key in content:
                figures[ours] = _positive(content[key], source, key) * factor
        name = default_name
    else:
        figures = dict(content)
        name = str(content.get("name") or default_name)
        figures.pop("name", None)
    unknown = set(figures) - set(REQUIRED) - set(OPTIONAL_PEAKS)
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
    return DeviceFigures(name=name, fp32_matrix_tflops=matrix, peaks=peaks, **values)


def _positive(value, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProfcastError(f"{source}: {key} {value!r} is not a positive number")
    return float(value)


def neusight_device_figures(folder) -> dict[str, DeviceFigures]:
    """Every device config of a NeuSight folder, by instance slug (``h100-80gb-hbm3``)."""
    folder = Path(folder)
    configs = folder / DEVICE_CONFIGS if (folder / DEVICE_CONFIGS).is_dir() else folder
    files = sorted(configs.glob("*.json"))
    if not files:
        raise ProfcastError(f"{folder}: no device configs; expected {DEVICE_CONFIGS}/<GPU>.json")
    figures = [read_device_figures(path) for path in files]
    return {f.name: f for f in figures}
