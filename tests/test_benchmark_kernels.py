"""benchmarks/kernels.py: the nearest-GPU baseline and the error records, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.kernels import error_records, nearest_gpu_ms
from profcast.regressors.kernel_model import roofline_ms, with_figures
from tests.test_kernel_model import gemm_rows, gpu


def test_nearest_gpu_scales_the_closest_measurement_by_the_roofline_ratio():
    devices = {
        "slow": gpu("slow", 10.0, 100.0, 10, 10.0),
        "near": gpu("near", 20.0, 200.0, 20, 20.0),
        "far": gpu("far", 100.0, 1000.0, 100, 100.0),
        "new": gpu("new", 25.0, 250.0, 25, 25.0),
    }
    shapes = [(4096, 4096, 4096), (64, 64, 64)]
    measured = pd.concat(
        [gemm_rows(name, shapes).assign(latency_ms=[5.0, 0.01]) for name in ("slow", "near", "far")],
        ignore_index=True,
    )
    table = with_figures(pd.concat([measured, gemm_rows("new", shapes[:1]).assign(latency_ms=1.0)]), devices)
    table["split"] = "all"
    rows = table[table["gpu"] == "new"]
    near = table[(table["gpu"] == "near") & (table["m"] == 4096)]
    expected = 5.0 * roofline_ms(rows)[0] / roofline_ms(near)[0]
    assert nearest_gpu_ms(table, rows, "new") == pytest.approx([expected])


def test_error_records_per_kind_and_method():
    rows = pd.DataFrame(
        {"source": "s", "op_kind": ["gemm", "gemm", "bmm"], "precision": "bf16", "latency_ms": [1.0, 2.0, 4.0]}
    )
    records = error_records(rows, {"ours": np.array([1.1, 1.0, np.nan])}, "g")
    assert records == [
        {"source": "s", "op_kind": "gemm", "precision": "bf16", "held_out_gpu": "g", "method": "ours", "n": 2,
         "mape": 30.0, "median_ape": 30.0},
    ]  # fmt: skip
