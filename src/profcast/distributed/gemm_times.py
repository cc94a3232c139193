"""A GEMM's time on one GPU: from its measured table where the GPU has one, else from its peak.

AIConfigurator's ``gemm_perf.parquet`` holds measured latencies (ms) of ``torch.nn.functional.linear``
for a grid of (m, n, k) at bfloat16. The measured efficiency (achieved over peak FLOP/s) is smooth in
log(m), log(n), log(k), so it is interpolated linearly there and held constant beyond the grid's
edges; a shape's time is its FLOPs over the peak times that efficiency. A precision without a table
(fp32 here) gets efficiency 1, its roofline time; the fitted constants scale it (``constants``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.interpolate import NearestNDInterpolator, RegularGridInterpolator

from profcast.distributed.system import GpuSystem

TABLE_PRECISIONS = {"bf16": "bfloat16", "fp16": "bfloat16"}  # fp16 tensor cores run at bf16's rate


class GemmTimes:
    """Seconds per GEMM shape on one GPU at one precision, measured-table-interpolated or roofline."""

    def __init__(self, system: GpuSystem, precision: str):
        self.peak = system.peak(precision)
        self.interpolator = None
        table_dtype = TABLE_PRECISIONS.get(precision)
        if system.gemm_table is not None and table_dtype is not None:
            self.interpolator = _efficiency_interpolator(str(system.gemm_table), table_dtype, self.peak)
        self._cache: dict = {}

    @property
    def measured(self) -> bool:
        """Whether times come from a measured table (else the roofline)."""
        return self.interpolator is not None

    def seconds(self, m: int, n: int, k: int) -> float:
        """Time of one ``[m, k] x [k, n]`` GEMM, in seconds."""
        key = (m, n, k)
        if key not in self._cache:
            flops = 2.0 * m * n * k
            efficiency = 1.0
            if self.interpolator is not None:
                efficiency = self.interpolator(m, n, k)
            self._cache[key] = flops / (self.peak * efficiency)
        return self._cache[key]


@lru_cache(maxsize=8)
def _efficiency_interpolator(table_path: str, dtype: str, peak: float):
    table = pd.read_parquet(table_path, columns=["gemm_dtype", "m", "n", "k", "latency"])
    table = table[table["gemm_dtype"] == dtype].groupby(["m", "n", "k"], as_index=False)["latency"].median()
    table["efficiency"] = 2.0 * table["m"] * table["n"] * table["k"] / (table["latency"] * 1e-3 * peak)
    axes = [np.log2(np.sort(table[c].unique()).astype(float)) for c in ("m", "n", "k")]
    cube = np.full([len(a) for a in axes], np.nan)
    logs = np.log2(table[["m", "n", "k"]].to_numpy(float))
    index = [np.searchsorted(axes[i], logs[:, i]) for i in range(3)]
    cube[index[0], index[1], index[2]] = np.log(table["efficiency"].to_numpy())
    if np.isnan(cube).any():  # a few shapes were not measured: take the nearest measured one
        nearest = NearestNDInterpolator(logs, np.log(table["efficiency"].to_numpy()))
        holes = np.argwhere(np.isnan(cube))
        cube[tuple(holes.T)] = nearest(np.column_stack([axes[i][holes[:, i]] for i in range(3)]))
    interpolate = RegularGridInterpolator(axes, cube)
    low, high = np.array([a[0] for a in axes]), np.array([a[-1] for a in axes])

    def efficiency(m: int, n: int, k: int) -> float:
        point = np.clip(np.log2([m, n, k]), low, high)
        return float(np.exp(interpolate(point[None, :])[0]))

    return efficiency
