"""A bf16 trace forecast call by call from a GPU's figures: routes, precisions, and unseen ops from kind and shapes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from profcast.errors import ProfcastError
from profcast.forecast import trace_on_figures
from profcast.forecast.trace_on_figures import (
    forecast_calls,
    forecast_trace_on_figures,
    kernel_rows,
    kind_and_shapes_us,
)
from profcast.ingest.device_figures import DeviceFigures, read_device_figures
from profcast.ingest.gpu_spec_sheet import with_spec_sheet
from profcast.ingest.trace_calls import read_trace_calls
from profcast.predict import main as predict_main
from profcast.regressors.call_costs import add_call_costs
from profcast.regressors.kernel_model import KernelModel
from tests.conftest import REPO
from tests.test_kernel_model import gpu, synthetic_atlas

TRACE = REPO / "examples" / "profiles" / "tiny_layer_bf16.pt.trace.json.gz"
SHARED = REPO.parent / "shared" / "data"
NEUSIGHT_TEST = SHARED / "neusight" / "scripts" / "asplos" / "data" / "dataset" / "test"
AICONFIGURATOR = SHARED / "aiconfigurator"
H200 = AICONFIGURATOR / "systems" / "h200_sxm.yaml"
needs_shared = pytest.mark.skipif(not (NEUSIGHT_TEST.is_dir() and H200.is_file()), reason="../shared/data absent")


def calls_of(rows) -> pd.DataFrame:
    """Costed calls from (kind, input shapes, dtype) triples."""
    frame = pd.DataFrame(
        [
            {"kind": kind, "phase": "fw", "input_shapes": shapes, "output_shape": (), "dtype": dtype}
            for kind, shapes, dtype in rows
        ]  # fmt: skip
    )
    return add_call_costs(frame.assign(repeat=1.0, time_us=1.0))


def test_the_bf16_trace_carries_bf16_for_autocast_matmuls():
    calls = read_trace_calls(TRACE)
    # autocast: aten::linear gets FP32 tensors, casts them and computes at bf16 inside
    assert set(calls.loc[calls["kind"].isin(["linear", "mm"]), "dtype"]) == {"bfloat16"}
    assert set(calls.loc[calls["kind"] == "layer_norm", "dtype"]) == {"float32"}  # autocast keeps norms in FP32


def test_calls_become_atlas_rows_at_their_precision():
    rows = kernel_rows(
        calls_of(
            [
                ("linear", ((4, 64, 128), (512, 128), (512,)), "bfloat16"),
                ("bmm", ((8, 64, 32), (8, 32, 64)), "float32"),
                ("layer_norm", ((4, 64, 128), (128,), (128,)), "float32"),
                ("scaled_dot_product_attention", ((4, 8, 64, 16), (4, 8, 64, 16), (4, 8, 64, 16)), "bfloat16"),
                ("view", ((4, 64, 128),), "bfloat16"),
            ]
        )
    )
    assert list(rows["op_kind"].fillna("-")) == ["gemm", "bmm", "layernorm", "attention", "-"]
    assert list(rows["precision"]) == ["bf16", "fp32", "fp32", "bf16", "fp32"]
    linear = rows.iloc[0]
    assert (linear["m"], linear["n"], linear["k"]) == (4 * 64, 512, 128)  # the batch folded into M
    assert (rows.iloc[1]["batch"], rows.iloc[1]["m"], rows.iloc[1]["n"], rows.iloc[1]["k"]) == (8, 64, 64, 32)
    assert (rows.iloc[2]["m"], rows.iloc[2]["n"]) == (4 * 64, 128)
    attention = rows.iloc[3]  # 4·B·H·L²·D FLOPs; Q, K, V, O of 2 bytes each
    assert attention["flops"] == 4 * 4 * 8 * 64 * 64 * 16
    assert attention["bytes"] == 4 * 4 * 8 * 64 * 16 * 2


def test_an_unseen_op_is_forecast_by_its_roofline_on_bytes():
    gpu = DeviceFigures("g", 10.0, memory_bandwidth_gbs=1000.0, memory_gb=16, l2_mb=None, sm_count=None, clock_mhz=None)
    calls = calls_of([("select_backward", ((4, 64, 128),), "bfloat16"), ("unflatten", ((10,), (30,)), "float32")])
    # select_backward: read 4·64·128 = 32,768 bf16 elements, write as many: 131,072 bytes at 1 TB/s = 0.131 µs, + tau 2
    # unflatten: read 10 + 30 FP32 elements, write the largest (30): 280 bytes = 0.00028 µs, + 2 µs
    assert kind_and_shapes_us(calls, gpu, tau_us=2.0) == pytest.approx([2.131072, 2.00028])


class FixedModel:
    """A stand-in for the kernel model: 1 ms per call, so the routing is what is checked."""

    tau_us = 2.0

    def predict(self, rows):
        return [1.0] * len(rows)


def test_every_call_is_forecast_and_none_dropped():
    gpu = DeviceFigures("g", 10.0, memory_bandwidth_gbs=1000.0, memory_gb=16, l2_mb=None, sm_count=None, clock_mhz=None)
    calls = calls_of(
        [
            ("add", ((4, 128), (4, 128)), "bfloat16"),
            ("select_backward", ((4, 64, 128),), "bfloat16"),
            ("view", ((4, 128),), "bfloat16"),
            ("conv2d", ((1, 8, 16, 16), (8, 8, 1, 1)), "float32"),
        ]
    )
    forecast = forecast_calls(calls, FixedModel(), gpu)
    assert list(forecast["route"]) == ["kernel model", "kind and shapes", "no device work", "kind and shapes"]
    # conv2d 1x1, 8 -> 8 channels on 16x16: 2·256·8·8 = 32,768 FLOPs at 10 TFLOPS = 0.0033 µs; bytes
    # (2,048 + 64 + 2,048 elements) · 4 = 16,640 at 1 TB/s = 0.01664 µs (the larger), + tau 2 µs
    assert list(forecast["forecast_us"]) == pytest.approx([1000.0, 2.131072, 0.0, 2.01664])
    assert list(forecast["precision"])[:3] == ["fp32", "bytes only", "fp32"]  # element-wise computes in FP32


def test_a_precision_the_figures_lack_is_one_line():
    gpu = DeviceFigures("g", 10.0, memory_bandwidth_gbs=1000.0, memory_gb=16, l2_mb=None, sm_count=None, clock_mhz=None)

    class NaNModel(FixedModel):
        def predict(self, rows):
            return [float("nan")] * len(rows)

    calls = calls_of([("mm", ((64, 64), (64, 64)), "bfloat16")])
    with pytest.raises(ProfcastError, match="no bf16 peak"):
        forecast_calls(calls, NaNModel(), gpu)


@needs_shared
def test_spec_sheet_fills_what_aiconfigurator_figures_lack():
    figures = with_spec_sheet(read_device_figures(H200))
    assert (figures.sm_count, figures.l2_mb, figures.fp32_tflops) == (132, 50, 67)
    assert figures.peaks["bf16"] == 989  # the file's own figures are kept


@needs_shared
def test_the_bf16_trace_is_forecast_on_h200_from_its_figures(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path))  # the fitted kernel model is cached here, not in ~
    # a small atlas (NeuSight's test set and AIConfigurator's tables) keeps the fit in seconds
    code = predict_main(
        ["--profile", str(TRACE), "--target-gpu", str(H200), "--atlas-data", str(NEUSIGHT_TEST)]
        + ["--atlas-data", str(AICONFIGURATOR / "systems" / "data" / "h100_sxm")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("h200: unmeasured GPU, forecast from its figures (h200_sxm.yaml)")
    assert "bf16" in out and "on the bf16 tensor peak (989 TFLOPS)" in out
    assert "scaled_dot_product_attention" in out.split("forecast from kind and shapes")[1]
    step_ms = float(out.split("step time ")[1].split(" ms")[0])
    assert 0 < step_ms < 100


def test_without_atlas_data_or_anchor_it_says_what_to_pass(capsys):
    with pytest.raises(ProfcastError, match="--atlas-data"):
        predict_main(["--profile", str(TRACE), "--target-gpu", "h200.yaml"])
    with pytest.raises(ProfcastError, match="--atlas-data DIR"):
        forecast_trace_on_figures(TRACE, "h200.yaml", [])
    with pytest.raises(ProfcastError, match="label.csv: without --anchor, --target-gpu forecasts a PyTorch trace"):
        forecast_trace_on_figures("label.csv", "h200.yaml", ["atlas"])


def test_figures_without_an_fp32_vector_peak_are_one_line():
    gpu = DeviceFigures("g", None, memory_bandwidth_gbs=1000.0, memory_gb=16, l2_mb=None, sm_count=None, clock_mhz=None)
    calls = calls_of([("add", ((4, 128), (4, 128)), "bfloat16")])
    with pytest.raises(ProfcastError, match="g: no FP32 vector peak, which the trace's add calls run at"):
        forecast_calls(calls, FixedModel(), gpu)


def test_the_kernel_model_is_fitted_once_then_read_back(monkeypatch, tmp_path):
    atlas_folder = tmp_path / "atlas"
    atlas_folder.mkdir()
    (atlas_folder / "gemm.parquet").write_bytes(b"a table")
    devices = [gpu("small", 10.0, 500.0, 40, 100.0), gpu("big", 60.0, 3000.0, 132, 900.0)]
    atlas = synthetic_atlas(devices)
    fits = []

    def fit(atlas_data, left_out, rows_per_group):
        fits.append(left_out)
        with threadpool_limits(limits=1):
            return KernelModel(max_iter=20, tau_us=5.0).fit(atlas, atlas["latency_ms"]), {}

    monkeypatch.setattr(trace_on_figures, "fit_kernel_model", fit)
    cache = tmp_path / "cache"
    first = trace_on_figures.cached_kernel_model([atlas_folder], "new", cache_dir=cache)
    again = trace_on_figures.cached_kernel_model([atlas_folder], "new", cache_dir=cache)
    assert fits == ["new"]
    with threadpool_limits(limits=1):
        np.testing.assert_allclose(again.predict(atlas), first.predict(atlas))
    # another GPU left out, another rows-per-group, or a changed atlas file is another model
    trace_on_figures.cached_kernel_model([atlas_folder], "other", cache_dir=cache)
    trace_on_figures.cached_kernel_model([atlas_folder], "new", rows_per_group=10, cache_dir=cache)
    (atlas_folder / "gemm.parquet").write_bytes(b"another table")
    trace_on_figures.cached_kernel_model([atlas_folder], "new", cache_dir=cache)
    assert fits == ["new", "other", "new", "new"]
