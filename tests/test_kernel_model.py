"""The kernel model over the atlas (issue 30): per-precision peaks, rooflines, wave quantisation, unseen GPUs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from profcast.errors import ProfcastError
from profcast.ingest.device_figures import DeviceFigures
from profcast.regressors.kernel_model import KernelModel, roofline_ms, row_peak_tflops, wave_efficiency, with_figures


def gpu(name, fp32, bandwidth, sms, bf16=None, matrix=None):
    peaks = {"bf16": bf16} if bf16 else {}
    return DeviceFigures(name, fp32, bandwidth, 80.0, 40.0, sms, 1500.0, fp32_matrix_tflops=matrix, peaks=peaks)


def gemm_rows(gpu_name, shapes, precision="bf16"):
    width = 2 if precision == "bf16" else 4
    rows = [
        {"source": "test", "gpu": gpu_name, "precision": precision, "op_kind": "gemm", "op": "linear",
         "phase": "forward", "batch": 1.0, "m": m, "n": n, "k": k, "kv_heads": np.nan,
         "flops": 2.0 * m * n * k, "bytes": float(width * (m * k + k * n + m * n))}
        for m, n, k in shapes
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_each_call_meets_the_peak_of_its_precision_and_unit():
    a100 = gpu("a100", 19.5, 1935.0, 108, bf16=312.0, matrix=19.5)
    mi100 = gpu("mi100", 23.1, 1230.0, 120, matrix=46.1)
    assert row_peak_tflops("gemm", "bf16", a100) == 312.0
    assert row_peak_tflops("linear", "fp32", mi100) == 46.1  # FP32 matrix units
    assert row_peak_tflops("elementwise", "bf16", a100) == 19.5  # vector units at any storage precision
    assert np.isnan(row_peak_tflops("gemm", "fp8", a100))  # no fp8 figure: no forecast, not a wrong one


def test_roofline_is_the_slower_of_compute_and_memory():
    rows = with_figures(
        gemm_rows("g", [(1024, 1024, 1024), (4096, 1, 4096)]), {"g": gpu("g", 10.0, 1000.0, 100, 100.0)}
    )
    compute_ms = 2.0 * 1024**3 / 100e12 * 1e3  # 1024^3 GEMM: compute bound
    memory_ms = 2.0 * (4096 * 4096 + 4096 + 4096) / 1000e9 * 1e3  # GEMV: memory bound
    assert roofline_ms(rows) == pytest.approx([compute_ms, memory_ms])


def test_wave_quantisation_of_output_tiles():
    rows = with_figures(gemm_rows("g", [(256, 256, 64), (384, 128, 64)]), {"g": gpu("g", 10.0, 1000.0, 3, 100.0)})
    waves, efficiency = wave_efficiency(rows)
    # 2x2 = 4 tiles on 3 SMs: two waves, the second a third full; 3x1 tiles fill one wave exactly
    assert waves == pytest.approx([4 / 3, 1.0])
    assert efficiency == pytest.approx([4 / 6, 1.0])


def synthetic_atlas(devices):
    """GEMMs whose time is roofline / (0.8 * wave efficiency) + 5 us on every GPU: quantisation is the lesson."""
    shapes = [(m, n, k) for m in (128, 384, 1024, 2944, 8192) for n in (256, 640, 2048, 5120) for k in (512, 4096)]
    frames = []
    for device in devices:
        rows = with_figures(gemm_rows(device.name, shapes), {device.name: device})
        _, efficiency = wave_efficiency(rows)
        frames.append(rows.assign(latency_ms=roofline_ms(rows) / (0.8 * efficiency) + 0.005))
    return pd.concat(frames, ignore_index=True)


def test_a_gpu_never_measured_is_forecast_from_its_figures():
    seen = [
        gpu("small", 10.0, 500.0, 40, 100.0),
        gpu("big", 60.0, 3000.0, 132, 900.0),
        gpu("mid", 20.0, 900.0, 80, 250.0),
    ]
    new = gpu("new", 30.0, 1500.0, 108, 400.0)
    atlas = synthetic_atlas(seen)
    truth = synthetic_atlas([new])
    with threadpool_limits(limits=1):
        model = KernelModel(max_iter=150, tau_us=5.0).fit(atlas, atlas["latency_ms"])
        forecast = model.predict(truth)
    ours = np.mean(np.abs(forecast / truth["latency_ms"] - 1))
    roofline = np.mean(np.abs(roofline_ms(truth) / truth["latency_ms"] - 1))
    assert ours < 0.15 and ours < roofline / 2, (ours, roofline)


def test_rows_of_a_gpu_without_figures_are_refused():
    with pytest.raises(ProfcastError, match="no figures for GPU 'x'"):
        with_figures(gemm_rows("x", [(64, 64, 64)]), {"y": gpu("y", 1.0, 1.0, 1)})
