"""What the kernel model knows of matrix calls (bmm, linear, gemm, conv, attention) beyond their roofline.

Two things, each measured in docs/kernels.md:

- **A warm L2.** Kernel timings are taken by repeating one call; operands that fit in the GPU's L2 stay
  there between repeats and are not read from DRAM again. A matrix call's roofline therefore counts its
  bytes against DRAM bandwidth only when they exceed the L2 (``warm_l2_roofline_ms``). It matters most
  where DRAM is slow against a large L2: the L40S (864 GB/s, 96 MB) runs its weight-streaming GEMMs at
  up to twice its DRAM bandwidth.
- **Waves of output tiles, several tile shapes.** A GEMM kernel splits its output into tiles, one per
  SM at a time; the last wave may leave SMs idle. cuBLAS and CUTLASS pick among tile shapes, so the
  wave efficiency ``tiles / (ceil(tiles / SMs) * SMs)`` is given for each of ``TILE_SHAPES`` (the
  128x128 one is in ``kernel_model.wave_efficiency``); a bmm's tiles are its batch times one matrix's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MATRIX_KINDS = ("bmm", "linear", "gemm", "conv", "attention")  # kernel_model imports them from here
TILE_SHAPES = ((64, 64), (128, 256), (256, 128))  # (rows, columns) of the output tile, beside 128x128


def is_matrix(rows: pd.DataFrame) -> np.ndarray:
    """Which rows are matrix calls (the kinds this module describes)."""
    return rows["op_kind"].isin(MATRIX_KINDS).to_numpy()


def dram_bytes(rows: pd.DataFrame) -> np.ndarray:
    """The bytes a repeated call reads from DRAM: none when all of them fit in the L2, all of them otherwise."""
    moved = rows["bytes"].to_numpy(dtype=float)
    return np.where(moved > rows["l2_mb"].to_numpy(dtype=float) * 1e6, moved, 0.0)


def warm_l2_roofline_ms(rows: pd.DataFrame) -> np.ndarray:
    """Each row's roofline in ms with a warm L2: max(FLOPs / peak, DRAM bytes / bandwidth)."""
    compute = rows["flops"].to_numpy(dtype=float) / (rows["peak_tflops"].to_numpy(dtype=float) * 1e12)
    memory = dram_bytes(rows) / (rows["bandwidth_gbs"].to_numpy(dtype=float) * 1e9)
    return np.fmax(compute, memory) * 1e3


def output_tiles(rows: pd.DataFrame, tile_rows: int, tile_columns: int) -> np.ndarray:
    """Output tiles of each call: batch x ceil(m / rows) x ceil(n / columns); attention's are (batch x heads) x query blocks."""
    batch = rows["batch"].fillna(1).to_numpy(dtype=float)
    m, n = rows["m"].to_numpy(dtype=float), rows["n"].to_numpy(dtype=float)
    attention = rows["op_kind"].eq("attention").to_numpy()
    # an attention row's n is its head count: one tile per head and block of tile_rows queries
    return np.where(
        attention, batch * n * np.ceil(m / tile_rows), batch * np.ceil(m / tile_rows) * np.ceil(n / tile_columns)
    )


def waves_and_efficiency(tiles: np.ndarray, sms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(waves of ``tiles`` over the SMs, efficiency of the last wave: tiles / (ceil(waves) * SMs))."""
    waves = tiles / sms
    return waves, tiles / (np.ceil(waves) * sms)


def matrix_features(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The matrix calls' extra features (NaN on other kinds): warm-L2 compute and memory times, tile waves."""
    matrix = is_matrix(rows)
    flops = rows["flops"].to_numpy(dtype=float)
    peak = rows["peak_tflops"].to_numpy(dtype=float) * 1e12
    bandwidth = rows["bandwidth_gbs"].to_numpy(dtype=float) * 1e9
    sms = rows["sm_count"].to_numpy(dtype=float)
    features = {
        "log_compute_us": np.log10(flops / peak * 1e6 + 1e-3),
        "log_dram_us": np.log10(dram_bytes(rows) / bandwidth * 1e6 + 1e-3),
    }
    for tile_rows, tile_columns in TILE_SHAPES:
        waves, efficiency = waves_and_efficiency(output_tiles(rows, tile_rows, tile_columns), sms)
        features[f"log_waves_{tile_rows}x{tile_columns}"] = np.log10(waves)
        features[f"wave_efficiency_{tile_rows}x{tile_columns}"] = efficiency
    return {name: np.where(matrix, values, np.nan) for name, values in features.items()}


def units_precision(precision: str, figures) -> str:
    """The precision whose units run a matrix call: fp8 on a GPU without faster fp8 units (fp8 peak <= bf16) runs at bf16."""
    peaks = getattr(figures, "peaks", {}) or {}
    # Intel's Arc Pro B60 has no fp8 matrix units: AIConfigurator's figures give its fp8 peak as its bf16 peak
    if precision == "fp8" and "bf16" in peaks and peaks.get("fp8", 0.0) <= peaks["bf16"]:
        return "bf16"
    return precision
