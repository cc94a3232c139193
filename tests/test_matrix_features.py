"""Matrix calls in the kernel model: a warm L2, waves of several tile shapes, the units a precision runs on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from profcast.ingest.device_figures import DeviceFigures
from profcast.regressors.kernel_model import KernelModel, roofline_ms, with_figures
from profcast.regressors.matrix_features import (
    matrix_features,
    output_tiles,
    units_precision,
    warm_l2_roofline_ms,
)
from tests.test_kernel_model import gemm_rows, gpu, synthetic_atlas


def test_a_call_that_fits_in_l2_reads_nothing_from_dram():
    # 40 MB L2; a 4096x4096 bf16 GEMV moves ~33.6 MB (fits), a 8192x8192 one ~134 MB (does not)
    figures = {"g": gpu("g", 10.0, 1000.0, 100, 100.0)}
    rows = with_figures(gemm_rows("g", [(1, 4096, 4096), (1, 8192, 8192)]), figures)
    compute_ms = [2.0 * 4096 * 4096 / 100e12 * 1e3, 2.0 * 8192 * 8192 / 100e12 * 1e3]
    dram_ms = 2.0 * (8192 + 8192 * 8192 + 8192) / 1000e9 * 1e3
    assert warm_l2_roofline_ms(rows) == pytest.approx([compute_ms[0], dram_ms])
    assert roofline_ms(rows)[1] == pytest.approx(dram_ms)  # past the L2 both rooflines agree


def test_a_batched_matmul_has_batch_times_one_matrix_tiles():
    rows = pd.DataFrame(
        {"op_kind": ["bmm", "gemm", "attention"], "batch": [8.0, 1.0, 2.0], "m": [200.0, 200.0, 300.0],
         "n": [100.0, 100.0, 16.0]}
    )  # fmt: skip
    # 64x64 tiles: bmm 8 x 4 x 2, the GEMM 4 x 2; attention 2 x 16 heads x ceil(300 / 64) query blocks
    assert output_tiles(rows, 64, 64) == pytest.approx([64.0, 8.0, 2 * 16 * 5])


def test_tile_waves_are_given_for_matrix_calls_only():
    figures = {"g": gpu("g", 10.0, 1000.0, 3, 100.0)}
    rows = with_figures(gemm_rows("g", [(256, 256, 64)]), figures)
    vector = rows.assign(op_kind="elementwise")
    features = matrix_features(pd.concat([rows, vector], ignore_index=True))
    # 256x256 output in 64x64 tiles: 16 tiles on 3 SMs, six waves, the last one of three a third full
    assert features["wave_efficiency_64x64"] == pytest.approx([16 / 18, np.nan], nan_ok=True)
    assert features["wave_efficiency_256x128"][0] == pytest.approx(2 / 3)  # 1 x 2 tiles on 3 SMs


def test_fp8_runs_on_bf16_units_where_a_gpu_has_no_faster_fp8():
    no_fp8 = DeviceFigures("b60", 12.3, 456.0, 24.0, 18.0, 20, 2400.0, peaks={"bf16": 98.3, "fp8": 98.3})
    hopper = DeviceFigures("h100", 67.0, 3350.0, 80.0, 50.0, 132, 1980.0, peaks={"bf16": 989.0, "fp8": 1978.0})
    assert units_precision("fp8", no_fp8) == "bf16"
    assert units_precision("fp8", hopper) == "fp8"
    assert units_precision("bf16", no_fp8) == "bf16"
    rows = with_figures(gemm_rows("b60", [(64, 64, 64)], precision="fp8"), {"b60": no_fp8})
    assert list(rows["units_precision"]) == ["bf16"] and list(rows["precision"]) == ["fp8"]


@pytest.fixture(scope="module")
def fitted():
    seen = [gpu("small", 10.0, 500.0, 40, 100.0), gpu("big", 60.0, 3000.0, 132, 900.0)]
    seen.append(gpu("mid", 20.0, 900.0, 80, 250.0))
    atlas = synthetic_atlas(seen)
    with threadpool_limits(limits=1):
        return KernelModel(max_iter=150, tau_us=5.0, gpu_features=False).fit(atlas, atlas["latency_ms"])


def test_more_work_is_never_forecast_faster(fitted):
    new = gpu("new", 30.0, 1500.0, 108, 400.0)
    shapes = [(2048, 2048, k) for k in (256, 1024, 4096, 16384)]
    forecast = fitted.predict(with_figures(gemm_rows("new", shapes), {"new": new}))
    assert np.all(np.diff(forecast) > 0), forecast


def test_a_held_out_gpu_is_forecast_from_its_own_figures(fitted):
    # the same large GEMMs on two GPUs nobody measured, one with twice the other's peak and bandwidth
    shapes = [(8192, 5120, 4096), (2944, 2048, 4096)]
    slow, fast = gpu("slow", 15.0, 750.0, 80, 200.0), gpu("fast", 30.0, 1500.0, 80, 400.0)
    on_slow = fitted.predict(with_figures(gemm_rows("slow", shapes), {"slow": slow}))
    on_fast = fitted.predict(with_figures(gemm_rows("fast", shapes), {"fast": fast}))
    # compute-bound calls: the faster figures give a faster forecast, by about the peaks' ratio
    assert np.all(on_slow / on_fast > 1.5), on_slow / on_fast


def test_matrix_and_vector_calls_are_forecast_by_sub_models_of_their_own():
    seen = [gpu("small", 10.0, 500.0, 40, 100.0), gpu("big", 60.0, 3000.0, 132, 900.0)]
    gemms = synthetic_atlas(seen)
    # element-wise rows: 2 bytes in and out per element, memory bound at 70% of the bandwidth plus 3 us
    vector = gemms.assign(op_kind="elementwise", op="add", k=np.nan, flops=gemms["m"] * gemms["n"])
    vector = vector.assign(bytes=8.0 * vector["flops"])
    vector = vector.assign(latency_ms=roofline_ms(vector) / 0.7 + 0.003)
    both = pd.concat([gemms, vector], ignore_index=True)
    with threadpool_limits(limits=1):
        split = KernelModel(max_iter=50, gpu_features=False).fit(both, both["latency_ms"])
        vector_only = KernelModel(max_iter=50, gpu_features=False).fit(vector, vector["latency_ms"])
    assert sorted(split.family_models_) == ["matrix", "vector"]
    # the vector forecasts do not depend on which matrix calls were fitted beside them
    assert split.predict(vector) == pytest.approx(vector_only.predict(vector))
    assert np.all(np.isfinite(split.predict(both)))
