"""A PyTorch trace forecast call by call on a GPU nobody measured, from its figures and the kernel atlas.

``profcast predict --profile TRACE --target-gpu FIGURES --atlas-data DIR ...`` (no ``--anchor``): the
trace supplies each call's kind, shapes and dtype, not its times (it may come from a CPU). The kernel
model (``regressors/kernel_model``) is fitted on a subsample of the atlas with the target's own rows left
out (once: later calls read it from profcast's cache, ``cached_kernel_model``), and forecasts each call
of a kind the atlas has on the target's figures:

- matrix calls (linear, addmm, mm, matmul, bmm) at their dtype: a bf16/fp16 call is an atlas ``gemm``
  on that precision's tensor peak (the batch folded into M), an FP32 one ``linear``/``bmm`` on the FP32 peak;
- norm, softmax and element-wise calls as the atlas's ``layernorm``, ``softmax``, ``elementwise`` rows:
  computed in FP32 registers at any storage dtype (the bytes are the dtype's), on the FP32 vector peak;
- a backward call is a kernel with its own shapes, so it is forecast as the forward kernel it is.

A call of a kind whose work the cost table does not count (``known`` False) is forecast from its
canonical kind and shapes, never dropped nor scaled by a ratio: attention (a kind named
``*attention*``, e.g. ``scaled_dot_product_attention``, with (batch, heads, length, head size) inputs) as an atlas ``attention`` row of (batch, heads, length, head
size), anything else by its roofline on bytes, ``bytes / bandwidth + tau`` with every input read and
the largest written once; a call of counted work with no atlas row (a convolution) by its own
roofline at its precision. Layout-only calls (view, reshape, ...) do no device work: 0. The answer says
which precision each part ran at and how much of the forecast came from kind and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from profcast.atlas.figures import gpu_figures
from profcast.atlas.files import load_atlas
from profcast.errors import ProfcastError
from profcast.forecast.fitted_cache import cache_entry, cached_fit, files_fingerprint
from profcast.ingest.device_figures import read_device_figures
from profcast.ingest.gpu_spec_sheet import with_spec_sheet
from profcast.ingest.trace_calls import read_trace_calls
from profcast.regressors.call_costs import DEFAULT_DTYPE_BYTES, DTYPE_BYTES, add_call_costs, elements
from profcast.regressors.kernel_model import MEASURED_SETTINGS, KernelModel, with_figures
from profcast.regressors.per_call import kind_and_shapes_us, roofline_us

HALF_PRECISIONS = {"bfloat16": "bf16", "float16": "fp16"}
VECTOR_KINDS = {"norm": "layernorm", "softmax": "softmax", "elementwise": "elementwise", "embedding": "elementwise"}
# a trace's op names -> the atlas's (NeuSight's element-wise ops); any other name is an op the model never saw
ATLAS_OPS = {
    "add_": "add",
    "iadd": "add",
    "mul_": "mul",
    "div_": "div",
    "relu_": "relu",
    "native_layer_norm": "layer_norm",
}
ATLAS_OPS |= {"layer_norm": "layer_norm", "_softmax": "softmax", "native_layer_norm_backward": "layer_norm"}
ROWS_PER_GROUP = 300  # atlas rows per GPU, op kind, precision and split the model is fitted on (a 2-3 s fit)
KERNEL_CACHE_VERSION = 2  # bump when fit_kernel_model's sampling or KernelModel's fit change (2: measured settings)
ROUTES = ("kernel model", "kind and shapes", "no device work")
TOP_OPS = 5


def kernel_rows(calls: pd.DataFrame) -> pd.DataFrame:
    """Each costed trace call as an atlas row (op_kind, op, precision, phase, batch, m, n, k, flops, bytes)."""
    rows = []
    for kind, cls, shapes, dtype in zip(calls["kind"], calls["op_class"], calls["input_shapes"], calls["dtype"]):
        tensors = [s for s in shapes if isinstance(s, tuple) and s]
        row = {"op_kind": None, "op": ATLAS_OPS.get(kind, kind), "batch": 1.0, "m": 1.0, "n": 1.0, "k": 1.0}
        row["precision"] = "fp32"
        if cls == "matmul" and len(tensors) >= 2:
            batch, m, n, k = _matmul_dims(kind, tensors)
            half = HALF_PRECISIONS.get(dtype)
            if half:  # the atlas's tensor-core rows are AIConfigurator's GEMMs, one matrix each
                row |= {"op_kind": "gemm", "op": "gemm", "precision": half, "m": batch * m, "n": n, "k": k}
            else:
                row |= {"op_kind": "bmm" if batch > 1 else "linear", "batch": batch, "m": m, "n": n, "k": k}
        elif cls in VECTOR_KINDS and tensors:
            largest = max(tensors, key=elements)
            row |= {"op_kind": VECTOR_KINDS[cls], "m": elements(largest) / largest[-1], "n": float(largest[-1])}
        elif cls == "unknown" and _is_attention(kind) and len(tensors) >= 3 and len(tensors[0]) == 4:
            batch, heads, length, size = tensors[0]
            row |= {"op_kind": "attention", "op": "attention", "batch": batch, "m": length, "n": heads, "k": size}
            row["precision"] = HALF_PRECISIONS.get(dtype, "fp32")
        rows.append(row)
    frame = pd.DataFrame(rows, index=calls.index)
    frame["phase"] = "forward"
    frame["kv_heads"] = np.where(frame["op_kind"].eq("attention"), frame["n"], np.nan)
    attention = frame["op_kind"].eq("attention").to_numpy()
    frame["flops"] = calls["flops"].to_numpy(dtype=float)
    frame["bytes"] = calls["bytes"].to_numpy(dtype=float)
    if attention.any():
        work = _attention_work(frame[attention], calls.loc[attention, "dtype"])
        frame.loc[attention, "flops"], frame.loc[attention, "bytes"] = work
    return frame


def _matmul_dims(kind: str, tensors: list) -> tuple[float, float, float, float]:
    """(batch, M, N, K) of a matrix call from its input shapes (``linear``'s weight is (N, K))."""
    if kind == "linear":
        x, weight = tensors[0], tensors[1]
        return 1.0, float(elements(x[:-1])), float(weight[0]), float(x[-1])
    a, b = tensors[-2:] if kind in ("addmm", "baddbmm") else tensors[:2]
    batch = float(elements(np.broadcast_shapes(a[:-2], b[:-2]))) if len(a) > 2 or len(b) > 2 else 1.0
    return batch, float(a[-2] if len(a) > 1 else 1), float(b[-1]), float(a[-1])


def _is_attention(kind: str) -> bool:
    return "attention" in kind and "backward" not in kind


def _attention_work(rows: pd.DataFrame, dtypes) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes) of forward attention: 4·B·H·L²·D (QKᵀ and PV); Q, K, V read and O written once."""
    b, length, h, d = (rows[key].to_numpy(dtype=float) for key in ("batch", "m", "n", "k"))
    size = np.array([DTYPE_BYTES.get(dtype, DEFAULT_DTYPE_BYTES) for dtype in dtypes], dtype=float)
    return 4 * b * h * length * length * d, 4 * b * h * length * d * size


def fit_kernel_model(atlas_data, left_out: str, rows_per_group: int = ROWS_PER_GROUP) -> tuple[KernelModel, dict]:
    """(kernel model fitted on a subsample of the atlas without ``left_out``'s rows, every GPU's figures)."""
    kernels = load_atlas(atlas_data).kernels
    figures = {name: with_spec_sheet(f) for name, f in gpu_figures(atlas_data).items()}
    kernels = kernels[(kernels["gpu"] != left_out) & kernels["gpu"].isin(list(figures))]
    training = (
        kernels.sample(frac=1.0, random_state=0)
        .groupby(["gpu", "op_kind", "precision", "split"], observed=True)
        .head(rows_per_group)
    )
    training = with_figures(training.reset_index(drop=True), figures)
    with threadpool_limits(limits=1):  # OpenMP threads of the boosting oversubscribe a small machine
        return KernelModel(**MEASURED_SETTINGS).fit(training, training["latency_ms"]), figures


def cached_kernel_model(atlas_data, left_out: str, rows_per_group: int = ROWS_PER_GROUP, cache_dir=None) -> KernelModel:
    """The kernel model of ``fit_kernel_model``, fitted at the first call and read back from the cache after.

    Keyed (``forecast/fitted_cache``) by every file under the atlas folders (path, size, mtime), the GPU
    left out, the rows per group and the model's settings.
    """
    settings = {"rows_per_group": rows_per_group, "model": KernelModel(**MEASURED_SETTINGS).get_params()}
    salt = f"v{KERNEL_CACHE_VERSION}|{left_out}|{json.dumps(settings, sort_keys=True, default=str)}"
    entry = cache_entry("kernel-model", files_fingerprint(atlas_data, ("*",), salt), cache_dir)
    model, _ = cached_fit(entry, lambda: (fit_kernel_model(atlas_data, left_out, rows_per_group)[0], {}), KernelModel)
    return model


def require_vector_peak(calls: pd.DataFrame, rows: pd.DataFrame, target) -> None:
    """Refuse (one line) figures without an FP32 vector peak when the trace has vector calls."""
    vector = rows["op_kind"].isin(list(VECTOR_KINDS.values())).to_numpy()
    if vector.any() and not target.fp32_tflops:
        raise ProfcastError(
            f"GPU figures of {target.name}: no FP32 vector peak, which the trace's {calls['kind'][vector].iloc[0]} "
            "calls run at; give fp32_tflops in a figures file of ours (docs/new-gpu.md)"
        )


def forecast_calls(calls: pd.DataFrame, model: KernelModel, target) -> pd.DataFrame:
    """Each costed call's forecast on the target: ``forecast_us``, ``route`` (of ``ROUTES``) and ``precision``."""
    rows = kernel_rows(calls)
    modelled = rows["op_kind"].notna().to_numpy()
    forecast = np.zeros(len(calls))
    require_vector_peak(calls, rows, target)
    if modelled.any():
        known = with_figures(rows[modelled].assign(gpu=target.name), {target.name: target})
        with threadpool_limits(limits=1):
            forecast[modelled] = np.asarray(model.predict(known), dtype=float) * 1e3
    by_shapes = ~modelled & calls["op_class"].eq("unknown").to_numpy()
    forecast[by_shapes] = kind_and_shapes_us(calls[by_shapes], target, model.tau_us)
    # counted work of no atlas row (a convolution): its own roofline at its precision, never dropped
    by_roofline = ~modelled & ~by_shapes & ~calls["op_class"].eq("metadata").to_numpy()
    if by_roofline.any():
        forecast[by_roofline] = roofline_us(calls[by_roofline], target) + model.tau_us
    unseen = by_roofline | calls["op_class"].eq("unknown").to_numpy()  # attention too: its kind has no counted work
    route = np.where(unseen, ROUTES[1], np.where(modelled, ROUTES[0], ROUTES[2]))
    if np.isnan(forecast).any():
        missing = rows.loc[np.isnan(forecast), "precision"].iloc[0]
        raise ProfcastError(f"GPU figures of {target.name}: no {missing} peak, which a call of the trace runs at")
    precision = np.where(by_shapes, "bytes only", rows["precision"].to_numpy())
    return calls.assign(forecast_us=forecast, route=route, precision=precision)


def forecast_trace_on_figures(profile, target_gpu, atlas_data) -> str:
    """The per-step forecast of a shape-recorded trace on a figures file's GPU, as printable lines."""
    if not atlas_data:
        raise ProfcastError("--target-gpu without --anchor forecasts from the kernel atlas; pass --atlas-data DIR")
    if not str(profile).endswith((".json", ".json.gz")):
        raise ProfcastError(
            f"--profile {profile}: without --anchor, --target-gpu forecasts a PyTorch trace recorded with "
            "record_shapes=True (.json, .json.gz); for a NeuSight label CSV pass --anchor"
        )
    target = read_device_figures(target_gpu)
    given_fp32 = target.fp32_tflops
    target = with_spec_sheet(target)
    calls = add_call_costs(read_trace_calls(profile, gpu=target.name))
    require_vector_peak(calls, kernel_rows(calls), target)  # before the fit, which takes seconds
    model = cached_kernel_model(atlas_data, target.name)
    forecast = forecast_calls(calls, model, target)
    per_step = forecast["forecast_us"] * forecast["repeat"]
    step_us = float(per_step.sum())
    by_precision = per_step.groupby(forecast["precision"]).sum().sort_values(ascending=False)
    by_route = per_step.groupby(forecast["route"]).sum()
    unseen = sorted(set(forecast.loc[forecast["route"] == ROUTES[1], "kind"]))
    top = per_step.groupby(forecast["kind"]).sum().sort_values(ascending=False).head(TOP_OPS)
    bf16 = target.peak_tflops("bf16")
    lines = [
        f"{target.name}: unmeasured GPU, forecast from its figures ({Path(target_gpu).name}) and the kernel atlas "
        f"(kernel model fitted on {len(model.gpus_)} GPUs, {target.name}'s own rows left out)",
        f"trace {Path(profile).name}: {len(calls)} calls over {round(1 / calls['repeat'].iloc[0])} steps "
        "(their recorded times are not used)",
        f"step time {step_us / 1000:.3f} ms",
        "by precision (ms per step): "
        + ", ".join(f"{name} {value / 1000:.3f} ({100 * value / step_us:.0f}%)" for name, value in by_precision.items())
        + f"; matrix calls at bf16 on the bf16 tensor peak ({bf16:g} TFLOPS), vector calls computed in FP32",
        f"forecast from kind and shapes (ops with no atlas row: {', '.join(unseen) or 'none'}): "
        f"{by_route.get(ROUTES[1], 0.0) / 1000:.3f} ms, {100 * by_route.get(ROUTES[1], 0.0) / step_us:.1f}% of the step",
        f"FP32 vector peak: {_figure_source(given_fp32, target)}; SM count {target.sm_count or 0:g}, "
        f"L2 {target.l2_mb or 0:g} MB (ingest/gpu_spec_sheet.py when the file gives none)",
        "largest ops (ms per step): " + ", ".join(f"{name} {value / 1000:.3f}" for name, value in top.items()),
    ]
    return "\n".join(lines)


def _figure_source(given, target) -> str:
    if given is not None:
        return f"{given:g} TFLOPS (its figures file)"
    if target.fp32_tflops is None:
        return "unknown (no vector call can be forecast)"
    return f"{target.fp32_tflops:g} TFLOPS (published spec sheet, ingest/gpu_spec_sheet.py)"
