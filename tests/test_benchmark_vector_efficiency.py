"""benchmarks/vector_efficiency.py: achieved fraction of the figures' bandwidth, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.vector_efficiency import achieved_fraction, figure_lines
from profcast.regressors.kernel_model import with_figures
from tests.test_kernel_model import gpu


def vector_rows(gpu_name, shapes, kind="softmax"):
    """FP32 rows of m rows x n elements: one tensor read, one written (8 bytes per element), 5 FLOPs an element."""
    rows = [
        {"source": "test", "gpu": gpu_name, "precision": "fp32", "op_kind": kind, "op": kind, "phase": "forward",
         "batch": 1.0, "m": float(m), "n": float(n), "k": np.nan, "kv_heads": np.nan,
         "flops": 5.0 * m * n, "bytes": 8.0 * m * n}
        for m, n in shapes
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_call_at_half_the_bandwidth_achieves_one_half_and_small_calls_are_left_out():
    device = gpu("g", 10.0, 1000.0, 100)
    rows = with_figures(vector_rows("g", [(100_000, 2048), (10, 2048)]), {"g": device})
    # 1.6384 GB moved at 1000 GB/s takes 1.6384 ms; measured twice that: half the bandwidth
    rows["latency_ms"] = [2 * 1.6384, 0.01]
    table = achieved_fraction(rows)
    measured = {str(bucket): value for bucket, value in table.loc[("softmax", "g")].dropna().items()}
    assert measured == {"(1024, 2048]": 0.5}
    assert len(table) == 1  # the 164 kB call is under the 200 MB floor


def test_the_figures_table_derives_the_ridge_and_bytes_per_sm_cycle():
    (line,) = figure_lines({"g": gpu("g", 15.0, 1500.0, 100)})[2:]
    # ridge 15 TFLOPS / 1500 GB/s = 10 FLOP/byte; 1500 GB/s over 100 SMs x 1500 MHz = 10 bytes per SM-cycle
    assert line == "| g | 1500 | 100 | 1500 | 40 | 15.0 | 10.0 | 10.00 |"
