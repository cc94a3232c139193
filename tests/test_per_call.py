"""Per-call records, their FLOPs and bytes, GPU figures as data, and the per-call model (issue 24)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from profcast.errors import ProfcastError
from profcast.ingest.device_figures import DeviceFigures, neusight_device_figures, read_device_figures
from profcast.ingest.neusight_calls import read_call_folder, read_neusight_calls
from profcast.regressors.call_costs import add_call_costs, call_work, op_class
from profcast.regressors.per_call import (
    PerCallModel,
    call_features,
    call_peak_flops,
    call_precisions,
    figures_outside_range,
    interval_factors,
    leave_one_gpu_out_log_errors,
    op_categories,
    roofline_step_us,
    roofline_us,
    run_share_weights,
)

NEUSIGHT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "neusight"


# --- FLOPs and bytes, hand-computed -------------------------------------------------------------


def test_linear_forward_backward_and_accumulation():
    shapes, out = ((2, 512, 1024),), (2, 512, 4096)
    m, k, n = 1024, 1024, 4096
    assert call_work("Linear", "fw", shapes, out, "float32") == (2.0 * m * k * n, 4.0 * (m * k + k * n + m * n))
    assert call_work("Linear", "bw", shapes, out, "float32") == (4.0 * m * k * n, 8.0 * (m * k + k * n + m * n))
    params = k * n + n
    assert call_work("Linear", "acc", shapes, out, "float32") == (params, 4.0 * 3 * params)


def test_batched_matmul_and_addmm():
    flops, moved = call_work("matmul", "fw", ((2, 16, 512, 64), (2, 16, 64, 512)), (2, 16, 512, 512), "float32")
    assert flops == 2.0 * 2 * 16 * 512 * 512 * 64
    assert moved == 4.0 * (2 * 2 * 16 * 512 * 64 + 2 * 16 * 512 * 512)
    flops, _ = call_work("addmm", "fw", ((7680,), (2048, 2560), (2560, 7680)), (2048, 7680), "float32")
    assert flops == 2.0 * 2048 * 7680 * 2560


def test_convolution_needs_the_weight_shape():
    # input (8, 64, 56, 56), weight (128, 64, 3, 3), output (8, 128, 56, 56)
    flops, moved = call_work("conv2d", "fw", ((8, 64, 56, 56), (128, 64, 3, 3)), (8, 128, 56, 56), "float16")
    out = 8 * 128 * 56 * 56
    assert flops == 2.0 * out * 64 * 9
    assert moved == 2.0 * (8 * 64 * 56 * 56 + 128 * 64 * 9 + out)
    assert call_work("Conv2d", "fw", ((8, 64, 56, 56),), (8, 128, 56, 56), "float32") is None


def test_normalisation_softmax_elementwise_embedding_metadata():
    e = 2 * 16 * 512 * 512
    assert call_work("softmax", "fw", ((2, 16, 512, 512),), (2, 16, 512, 512), "float32") == (5.0 * e, 8.0 * e)
    e = 2 * 512 * 1024
    assert call_work("LayerNorm", "fw", ((2, 512, 1024),), (2, 512, 1024), "float32") == (8.0 * e, 8.0 * e)
    # add with broadcasting: both inputs read, output written once
    assert call_work("add", "fw", ((2, 512, 1024), (1, 512, 1024)), (2, 512, 1024), "float32") == (
        e,
        4.0 * (e + 512 * 1024 + e),
    )
    assert call_work("Embedding", "fw", ((2, 512),), (2, 512, 1024), "float32") == (0.0, 4.0 * (2 * e + 1024))
    assert call_work("view", "fw", ((2, 512, 1024), (1,)), (2, 512, 16, 64), "float32") == (0.0, 0.0)


def test_unknown_kinds_are_unknown():
    assert op_class("MyFancyOp") == "unknown"
    assert call_work("MyFancyOp", "fw", ((4, 4),), (4, 4), "float32") is None
    assert call_work("Embedding", "acc", ((2, 512),), (2, 512, 1024), "float32") is None


# --- per-call records from a label file -----------------------------------------------------------

HEADER = "op,target,meta,input_shapes,output_shape,dtype,latency,fw_latency,bw_latency,acc_latency\n"


def write_label(folder: Path, rows: str, num_layer: int = 3) -> Path:
    gpu = folder / "NVIDIA_L4"
    gpu.mkdir(parents=True, exist_ok=True)
    path = gpu / "bert_large-train-512-2.csv"
    path.write_text(HEADER + rows)
    path.with_suffix(".json").write_text(json.dumps({"num_layer": num_layer, "e2e_latency": 10.0}))
    return path


LABEL_ROWS = (
    'placeholder,input_ids,{},[],"(2, 512)",torch.int64,0,0,0,0\n'
    "call_module,bert.encoder.layer.0.attention.self.query,"
    "\"{'nn_module_stack': {'x': ('bert.encoder.layer.0.attention.self.query', <class 'torch.nn.modules.linear.Linear'>)}}\","
    '"[[2, 512, 1024]]","(2, 512, 1024)",torch.float32,0.35,0.1,0.2,0.05\n'
    'call_method,view,{},"[[2, 512, 1024], [1]]","(2, 512, 16, 64)",torch.float32,0.007,0.007,0,0\n'
)


def test_label_file_becomes_one_record_per_node_and_phase(tmp_path):
    calls = read_neusight_calls(write_label(tmp_path, LABEL_ROWS))
    assert list(zip(calls["kind"], calls["phase"])) == [
        ("Linear", "fw"),
        ("Linear", "bw"),
        ("Linear", "acc"),
        ("view", "fw"),
    ]
    linear = calls.iloc[0]
    assert (linear["gpu"], linear["model"], linear["batchsize"], linear["repeat"]) == ("l4", "bert_large", 2, 3)
    assert linear["input_shapes"] == ((2, 512, 1024),) and linear["output_shape"] == (2, 512, 1024)
    assert calls["time_us"].tolist() == pytest.approx([100.0, 200.0, 50.0, 7.0])
    assert calls.iloc[3]["repeat"] == 1  # the view is outside the traced layer
    costs = add_call_costs(calls)
    assert costs["known"].all()
    assert costs.iloc[0]["flops"] == 2.0 * 1024 * 1024 * 1024


def test_malformed_shape_cell_is_one_line_naming_it(tmp_path):
    rows = LABEL_ROWS.replace('"[[2, 512, 1024]]"', '"[[2, 512, x]]"', 1)
    with pytest.raises(ProfcastError, match=r"line 3, column input_shapes"):
        read_neusight_calls(write_label(tmp_path, rows))


def test_folder_without_label_files_is_refused(tmp_path):
    with pytest.raises(ProfcastError, match="no .*label file"):
        read_call_folder(tmp_path)


# --- GPU figures as data --------------------------------------------------------------------------


def test_neusight_device_config_in_our_units(tmp_path):
    path = tmp_path / "NVIDIA_A100_80GB_PCIe.json"
    path.write_text(
        json.dumps(
            {
                "Device": "A100",
                "Dev_Mem": 80,
                "Mem_Bw": 1935,
                "Num_Sm": 108,
                "Core_Per_SM": 64,
                "Freq": 1410,
                "SingleFLOPs": 19492,
                "L2Cache": 40,
            }
        )
    )
    figures = read_device_figures(path)
    assert figures.name == "a100-80gb-pcie"
    assert figures.fp32_tflops == pytest.approx(19.492)
    assert figures.bandwidth == pytest.approx(1935e9)
    assert figures.peak_flops(matrix=True) == pytest.approx(19.492e12)


def test_amd_config_has_matrix_and_vector_peaks(tmp_path):
    path = tmp_path / "AMD_Instinct_MI100.json"
    path.write_text(
        json.dumps(
            {
                "Dev_Mem": 32,
                "Mem_Bw": 1230,
                "Num_Sm": 120,
                "Freq": 1502,
                "SingleFLOPsMM": 46100,
                "SingleFLOPsVEC": 23100,
                "L2Cache": 8,
            }
        )
    )
    figures = read_device_figures(path)
    assert figures.peak_flops(matrix=True) == pytest.approx(46.1e12)
    assert figures.peak_flops(matrix=False) == pytest.approx(23.1e12)


def test_user_yaml_from_a_spec_sheet(tmp_path):
    path = tmp_path / "h200.yaml"
    path.write_text(
        "name: h200-141gb\nfp32_tflops: 67\nfp16_tflops: 989\nmemory_bandwidth_gbs: 4800\n"
        "memory_gb: 141\nl2_mb: 50\nsm_count: 132\nclock_mhz: 1980\n"
    )
    figures = read_device_figures(path)
    assert figures.name == "h200-141gb"
    assert figures.peak_flops(matrix=True, dtype="float16") == pytest.approx(989e12)
    assert figures.peak_flops(matrix=True, dtype="float32") == pytest.approx(67e12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fp32_tflops: 67\n", "missing 'memory_bandwidth_gbs'"),
        (
            "fp32_tflops: -1\nmemory_bandwidth_gbs: 1\nmemory_gb: 1\nl2_mb: 1\nsm_count: 1\nclock_mhz: 1\n",
            "fp32_tflops -1",
        ),
        (
            "fp32_tflops: .nan\nmemory_bandwidth_gbs: 1\nmemory_gb: 1\nl2_mb: 1\nsm_count: 1\nclock_mhz: 1\n",
            "fp32_tflops nan",
        ),
        ("fp32_tflop: 67\n", "unknown key 'fp32_tflop'"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_figures_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "gpu.yaml"
    path.write_text(text)
    with pytest.raises(ProfcastError, match=message):
        read_device_figures(path)


# --- the per-call model ---------------------------------------------------------------------------


def figures(name, tflops, bandwidth):
    return DeviceFigures(name, tflops, bandwidth, 16.0, 8.0, 80.0, 1500.0)


def synthetic_calls(devices, efficiency=0.5, tau=2.0):
    """Matmuls and elementwise calls of many sizes; measured time = roofline / efficiency + tau on every device."""
    rows = []
    for size in np.unique(np.geomspace(32, 8192, 40).astype(int)).tolist():
        for kind, shapes, out in (
            ("Linear", ((size, size),), (size, size)),
            ("add", ((size, size), (size, size)), (size, size)),
        ):
            rows.append({"model": "net", "mode": "train", "seq_len": 1, "batchsize": size, "node": len(rows), "kind": kind,
                         "phase": "fw", "input_shapes": shapes, "output_shape": out, "dtype": "float32", "repeat": 1})  # fmt: skip
    base = add_call_costs(pd.DataFrame(rows))
    frames = []
    for device in devices:
        frame = base.assign(gpu=device.name)
        frame["time_us"] = roofline_us(frame, device) / efficiency + tau
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def precision_calls():
    """A bf16 Linear, an FP32 Linear, an FP32 convolution and a bf16 add, one call each."""
    rows = [
        ("Linear", ((64, 64),), (64, 64), "bfloat16"),
        ("Linear", ((64, 64),), (64, 64), "float32"),
        ("conv2d", ((1, 8, 16, 16), (8, 8, 3, 3)), (1, 8, 16, 16), "float32"),
        ("add", ((64, 64), (64, 64)), (64, 64), "bfloat16"),
    ]
    frame = pd.DataFrame(
        [{"kind": k, "phase": "fw", "input_shapes": i, "output_shape": o, "dtype": d} for k, i, o, d in rows]
    )
    return add_call_costs(frame)


def test_each_call_runs_at_its_own_precision():
    h100 = DeviceFigures("h100", 67.0, 3350.0, 80.0, 50.0, 132.0, 1980.0, peaks={"bf16": 989.0, "tf32": 494.0})
    calls = precision_calls()
    assert call_precisions(calls, h100).tolist() == ["bf16", "fp32", "tf32", "fp32"]
    assert call_peak_flops(calls, h100).tolist() == [989e12, 67e12, 494e12, 67e12]
    # a GPU without tensor-core figures (NeuSight's configs): every call at its FP32 peak
    p100 = figures("p100", 9.3, 732.0)
    assert call_precisions(calls, p100).tolist() == ["bf16", "fp32", "fp32", "fp32"]
    assert set(call_peak_flops(calls, p100)) == {9.3e12}


def test_unmeasured_gpu_is_forecast_from_its_figures_alone():
    seen = [figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0)]
    new = figures("new", 20.0, 1000.0)  # never measured
    measured = synthetic_calls(seen)
    truth = synthetic_calls([new])
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=100).fit(measured, {d.name: d for d in seen})
        anchor = measured[measured["gpu"] == "fast"]
        predicted = model.predict_calls(anchor, seen[1], new)
    ratio = predicted / truth["time_us"].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.15), ratio
    # roofline alone is twice too fast on the big calls (efficiency 0.5)
    big = truth["batchsize"] == truth["batchsize"].max()
    assert (roofline_step_us(truth[big], new)["predicted_us"].sum() / truth.loc[big, "time_us"].sum()) < 0.6


def test_unknown_calls_take_their_runs_known_ratio():
    seen = [figures("slow", 10.0, 500.0), figures("mid", 20.0, 1000.0)]
    measured = synthetic_calls(seen)
    anchor = measured[measured["gpu"] == "mid"].copy()
    unknown = anchor.iloc[[0]].assign(
        kind="MyFancyOp", op_class="unknown", known=False, flops=math.nan, bytes=math.nan, time_us=30.0
    )
    anchor = pd.concat([anchor, unknown], ignore_index=True)
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=50).fit(measured, {d.name: d for d in seen})
        predicted = model.predict_calls(anchor, seen[1], seen[0])
        steps = model.predict_step_us(anchor, seen[1], seen[0])
    run = (anchor["batchsize"] == anchor.iloc[-1]["batchsize"]).to_numpy() & anchor["known"].to_numpy()
    ratio = predicted[run].sum() / anchor.loc[run, "time_us"].sum()
    assert predicted[-1] == pytest.approx(30.0 * ratio)
    assert steps["unknown_calls"].sum() == 1


def test_an_unknown_memory_bound_kind_is_forecast_from_its_shapes_not_the_ratio():
    seen = [figures("slow", 10.0, 500.0), figures("mid", 20.0, 1000.0)]
    measured = synthetic_calls(seen)
    anchor = measured[measured["gpu"] == "mid"].copy()
    # select_backward (canonical category data_movement_layout) has no counted work in call_costs
    unknown = anchor.iloc[[0]].assign(
        kind="select_backward", input_shapes=[((256, 1024),)], dtype="float16", op_class="unknown", known=False,
        flops=math.nan, bytes=math.nan, time_us=30.0,
    )  # fmt: skip
    anchor = pd.concat([anchor, unknown], ignore_index=True)
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=50).fit(measured, {d.name: d for d in seen})
        predicted = model.predict_calls(anchor, seen[1], seen[0])
    # read 256·1024 fp16 elements and write as many: 1,048,576 bytes at 500 GB/s = 2.097152 µs, plus tau (2 µs)
    assert predicted[-1] == pytest.approx(1_048_576 / 500e9 * 1e6 + 2.0)
    assert model.by_kind_and_shapes(anchor).tolist() == [False] * (len(anchor) - 1) + [True]


def two_kinds_of_one_class(devices):
    """``add`` and ``Dropout`` calls of the same shapes (same class, FLOPs, bytes): Dropout 4x further from its roofline."""
    calls = synthetic_calls(devices)
    calls = calls[calls["kind"] == "add"]
    dropout = calls.assign(kind="Dropout", node=calls["node"] + 1000)
    dropout["time_us"] = (dropout["time_us"] - 2.0) * 4 + 2.0
    return pd.concat([calls, dropout], ignore_index=True)


def test_op_category_separates_calls_of_one_class():
    seen = [figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0)]
    new = figures("new", 20.0, 1000.0)
    measured = two_kinds_of_one_class(seen)
    truth = two_kinds_of_one_class([new])
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=100).fit(measured, {d.name: d for d in seen})
        predicted = model.predict_calls(truth, new, new)
        # a trace names the same op by its aten op: same category, same forecast
        from_trace = model.predict_calls(truth.replace({"kind": {"Dropout": "native_dropout"}}), new, new)
    assert model.categories_ == ["dropout", "elementwise_activation"]
    assert from_trace == pytest.approx(predicted)
    big = (truth["batchsize"] == truth["batchsize"].max()).to_numpy()
    dropout, add = (
        predicted[big & (truth["kind"] == "Dropout").to_numpy()],
        predicted[big & (truth["kind"] == "add").to_numpy()],
    )
    # same shapes, same roofline: only the op category tells them apart (4x, less the 2 us floor both share)
    assert dropout[0] / add[0] == pytest.approx(4.0, rel=0.1)
    ratio = predicted / truth["time_us"].to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.25), ratio  # the smallest calls (~3 us) weigh least in the fit


def test_op_categories_of_fx_trace_and_unknown_kinds():
    assert op_categories(["Linear", "addmm", "Dropout", "native_dropout", "add", "MyFancyOp"]) == [
        "dense_matmul", "dense_matmul", "dropout", "dropout", "elementwise_activation", "other",
    ]  # fmt: skip


def test_a_category_the_fit_never_saw_is_a_missing_value():
    device = figures("slow", 10.0, 500.0)
    calls = synthetic_calls([device]).head(2).assign(kind=["Linear", "Dropout"])
    codes = call_features(calls, device, categories=["dense_matmul", "elementwise_activation"])["op_category"]
    assert codes.tolist() == [0, -1]  # -1: missing to the regressor, not an error
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=20).fit(synthetic_calls([device]), {"slow": device})
        assert np.isfinite(model.predict_calls(calls, device, device)).all()


def test_calls_weigh_by_their_share_of_the_runs_time():
    calls = pd.DataFrame(
        {
            "gpu": "g",
            "model": ["a", "a", "b"],
            "mode": "train",
            "seq_len": 1,
            "batchsize": 1,
            "time_us": [1.0, 1.0, 5.0],
            "repeat": [1, 3, 2],
        }  # fmt: skip
    )
    # run a: 1 and 3 us of 4 -> shares 1/4 and 3/4; run b: its only call, share 1
    assert run_share_weights(calls, 1.0) == pytest.approx([0.25, 0.75, 1.0])
    assert run_share_weights(calls, 0.5) == pytest.approx([0.5, 0.75**0.5, 1.0])
    assert run_share_weights(calls, 0.0) == pytest.approx([1.0, 1.0, 1.0])


def test_forecast_extrapolates_monotonically_beyond_the_measured_figures():
    """GPUs slower and faster than any measured one: the roofline base scales, the learned efficiency stays bounded."""
    seen = [figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0)]
    measured = synthetic_calls(seen)
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=100).fit(measured, {d.name: d for d in seen})
        anchor = measured[measured["gpu"] == "fast"]
        steps = [
            model.predict_step_us(anchor, seen[1], figures("x", 10.0 * scale, 500.0 * scale))["predicted_us"].sum()
            for scale in (0.25, 0.5, 1.0, 4.0, 8.0)
        ]
    assert all(a > b for a, b in zip(steps, steps[1:])), steps
    # a quarter of the slowest GPU's figures: close to 4x its time (the 2 us floors do not scale)
    truth = synthetic_calls([figures("x", 2.5, 125.0)])["time_us"].sum()
    assert steps[0] == pytest.approx(truth, rel=0.15)


def test_interval_weighs_every_gpu_the_same():
    # GPU a: 9 runs forecast exactly; GPU b: 1 run measured twice the forecast
    errors = pd.Series([0.0] * 9 + [math.log(2.0)], index=pd.Index(["a"] * 9 + ["b"], name="gpu"))
    # pooled (np.quantile): the 90th percentile is 0.1 of the way to log 2
    assert interval_factors(errors.to_numpy()) == pytest.approx((1.0, 2.0**0.1))
    # per GPU: b is half the weight, so the upper tail is b's error
    assert interval_factors(errors) == pytest.approx((1.0, 2.0))


def test_figures_outside_the_fitted_range_in_decades():
    fitted = [figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0)]
    # same ridge point (20 FLOP/byte), same L2, SMs and clock: only peak and bandwidth count
    assert figures_outside_range(figures("mid", 20.0, 1000.0), fitted) == 0.0
    assert figures_outside_range(figures("big", 400.0, 20000.0), fitted) == pytest.approx(1.0)
    # 40 TFLOPS on 500 GB/s: the ridge point 80 against at most 20 (0.60 decades) is the farthest
    assert figures_outside_range(figures("l4-like", 40.0, 500.0), fitted) == pytest.approx(math.log10(4))
    with pytest.raises(ProfcastError, match="no fitted GPU"):
        figures_outside_range(fitted[0], [])


def test_interval_widens_in_log_space_outside_the_fitted_range():
    errors = np.log([0.5, 1.0, 2.0])
    low, high = interval_factors(errors, coverage=1.0)
    assert (low, high) == pytest.approx((0.5, 2.0))
    # one decade outside, half a decade's widening each: log bounds x1.5
    assert interval_factors(errors, coverage=1.0, outside_decades=1.0) == pytest.approx((0.5**1.5, 2.0**1.5))


def test_leave_one_gpu_out_errors_are_indexed_by_gpu():
    seen = [figures("slow", 10.0, 500.0), figures("mid", 20.0, 1000.0), figures("fast", 40.0, 2000.0)]
    calls = synthetic_calls(seen)
    steps = (
        calls.assign(e2e_us=calls["time_us"] * calls["repeat"])
        .groupby(["gpu", "model", "mode", "seq_len", "batchsize"], as_index=False)["e2e_us"]
        .sum()
    )
    with threadpool_limits(limits=1):
        errors = leave_one_gpu_out_log_errors(
            calls, steps[steps["gpu"] != "fast"], {d.name: d for d in seen}, max_iter=30
        )
    runs = steps["batchsize"].nunique()
    assert errors.index.name == "gpu" and errors.index.value_counts().to_dict() == {"mid": runs, "slow": runs}
    assert np.isfinite(errors).all()
    with pytest.raises(ProfcastError, match="no measured GPU with step times"):
        leave_one_gpu_out_log_errors(calls, steps.iloc[:0], {d.name: d for d in seen})


def test_fit_refuses_a_measured_gpu_without_figures():
    seen = [figures("slow", 10.0, 500.0)]
    with pytest.raises(ProfcastError, match="no figures for measured GPU 'other'"):
        PerCallModel().fit(synthetic_calls(seen).assign(gpu="other"), {"slow": seen[0]})


@pytest.mark.skipif(not (NEUSIGHT / "scripts").is_dir(), reason="NeuSight shared data absent (../shared/data/neusight)")
def test_gpu_left_out_of_the_data_gets_forecasts_from_one_figures_file(tmp_path):
    """L4 as a new GPU: its label files are never fitted on; its figures come from a user YAML file."""
    calls, steps = read_call_folder(NEUSIGHT)
    calls = add_call_costs(calls)
    devices = neusight_device_figures(NEUSIGHT)
    l4 = devices.pop("l4")
    spec = tmp_path / "my-l4.yaml"
    spec.write_text(
        f"name: my-l4\nfp32_tflops: {l4.fp32_tflops}\nmemory_bandwidth_gbs: {l4.memory_bandwidth_gbs}\n"
        f"memory_gb: {l4.memory_gb}\nl2_mb: {l4.l2_mb}\nsm_count: {l4.sm_count}\nclock_mhz: {l4.clock_mhz}\n"
    )
    new_gpu = read_device_figures(spec)
    with threadpool_limits(limits=1):
        model = PerCallModel().fit(calls[calls["gpu"] != "l4"], devices)
        anchor = calls[(calls["gpu"] == "a100-80gb-pcie") & (calls["mode"] == "train")]
        forecast = model.predict_step_us(anchor, devices["a100-80gb-pcie"], new_gpu)
    assert "l4" not in model.gpus_
    measured = forecast.merge(steps[steps["gpu"] == "l4"], on=["model", "mode", "seq_len", "batchsize"])
    roofline = roofline_step_us(anchor, new_gpu).merge(
        measured[["model", "batchsize", "e2e_us"]], on=["model", "batchsize"]
    )
    assert len(measured) == 3  # L4's three training runs, also measured on the A100
    ours = (measured["predicted_us"] / measured["e2e_us"] - 1).abs().mean()
    roof = (roofline["predicted_us"] / roofline["e2e_us"] - 1).abs().mean()
    assert ours < roof


# --- src.predict --target-gpu ---------------------------------------------------------------------


def test_predict_target_gpu_refuses_a_profile_without_shapes(tmp_path, capsys):
    from profcast.cli import exit_code
    from profcast.predict import main

    profile = tmp_path / "tfstats.csv"
    profile.write_text("Type,Operation,Total self-time (us)\nDevice,MatMul,10\n")
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text("fp32_tflops: 1\nmemory_bandwidth_gbs: 1\nmemory_gb: 1\nl2_mb: 1\nsm_count: 1\nclock_mhz: 1\n")
    args = ["--profile", str(profile), "--anchor", "l4", "--target-gpu", str(gpu), "--calls-data", str(tmp_path)]
    assert exit_code(main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs per-call shapes" in err[0]
    assert exit_code(main, [*args, "--batchsize", "4"]) == 2
    assert "--batchsize does not apply" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (NEUSIGHT / "scripts").is_dir(), reason="NeuSight shared data absent (../shared/data/neusight)")
def test_predict_forecasts_a_gpu_left_out_of_the_data(tmp_path, capsys):
    """L4 named in a user's figures file: its label files are left out of the fit; the answer says it is unmeasured."""
    from profcast.cli import exit_code
    from profcast.predict import main

    spec = tmp_path / "l4.yaml"
    spec.write_text(
        "name: l4\nfp32_tflops: 31.334\nmemory_bandwidth_gbs: 300\nmemory_gb: 24\nl2_mb: 48\nsm_count: 60\nclock_mhz: 2040\n"
    )
    profile = NEUSIGHT / "scripts/asplos/label/NVIDIA_A100_80GB_PCIe/bert_large-train-512-2.csv"
    args = [
        "--profile",
        str(profile),
        "--anchor",
        "a100-80gb-pcie",
        "--target-gpu",
        str(spec),
        "--calls-data",
        str(NEUSIGHT),
    ]
    assert exit_code(main, args) == 0
    out = capsys.readouterr().out
    assert "l4: unmeasured GPU" in out
    # L4's vector ridge point 31334/300 FLOP/byte against P4's 5699/192, the largest of the others
    assert f"its figures lie {math.log10((31334 / 300) / (5699 / 192)):.2f} decades outside" in out
    step = re.search(r"step time ([\d.]+) ms, 80% interval ([\d.]+)-([\d.]+) ms", out)
    predicted, low, high = (float(value) for value in step.groups())
    assert low < predicted < high
    measured = json.loads(profile.parent.parent.joinpath("NVIDIA_L4", "bert_large-train-512-2.json").read_text())
    assert abs(predicted / measured["e2e_latency"] - 1) < 0.3  # 7% off on the day this was written
