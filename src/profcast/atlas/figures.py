"""The figures of every GPU an atlas folder describes, one ``DeviceFigures`` per slug, merged across sources.

A folder may hold AIConfigurator's ``systems/<system>.yaml`` and NeuSight's device configs
(``device_configs/<GPU>.json`` anywhere under it). Where both describe the same GPU (the slug table
of ``profcast.ingest.gpu_systems``: H100 SXM, A100 80GB PCIe, L4), one record holds both: NeuSight's
FP32 peaks, L2, SM count and clock, AIConfigurator's tensor peaks per precision, power and node. A
figure both give is NeuSight's (a peak AIConfigurator gives for another precision is added).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.ingest.device_figures import DeviceFigures, read_device_figures


def figures_files(folder: Path) -> list[Path]:
    """The figures files under ``folder``: AIConfigurator systems YAML and NeuSight device configs."""
    systems = [p for p in folder.rglob("*.yaml") if p.parent.name == "systems"]
    configs = [p for p in folder.rglob("*.json") if p.parent.name == "device_configs"]
    return sorted(systems) + sorted(configs)


def merged(first: DeviceFigures, second: DeviceFigures) -> DeviceFigures:
    """One GPU's figures from two files: ``first``'s where both give one, ``second``'s added where it alone does."""
    filled = {
        key: getattr(second, key)
        for key in ("fp32_tflops", "l2_mb", "sm_count", "clock_mhz", "fp32_matrix_tflops", "power_w", "node")
        if getattr(first, key) is None
    }
    return replace(first, peaks={**second.peaks, **first.peaks}, **filled)


def gpu_figures(folders) -> dict[str, DeviceFigures]:
    """Every GPU's figures found under ``folders``, by slug (NeuSight's first, then AIConfigurator's merged in)."""
    by_name: dict[str, DeviceFigures] = {}
    for folder in folders:
        folder = Path(str(folder)).expanduser()
        if not folder.exists():
            raise ProfcastError(f"{folder}: no such folder")
        files = [folder] if folder.is_file() else figures_files(folder)
        # NeuSight's configs first: their figures win where both sources give one
        for path in sorted(files, key=lambda p: p.suffix != ".json"):
            figures = read_device_figures(path)
            by_name[figures.name] = merged(by_name[figures.name], figures) if figures.name in by_name else figures
    return by_name
