"""A forecast for a GPU nobody here measured, from its figures file and one per-call anchor profile.

``profcast predict --profile LABEL.csv --anchor a100-80gb-pcie --target-gpu my-gpu.yaml`` (or a
PyTorch trace recorded with shapes as the profile): the
per-call model (``regressors/per_call``) is fitted on the measured calls of a NeuSight folder
(``--calls-data``), leaving out any GPU named like the target (so a measured GPU can be tried as if it
were new), and forecasts the profile's calls on the target from the target's figures. The 80%
interval is calibrated leave-one-GPU-out on the measured GPUs, by the same method as the served
unmeasured target's (``pipeline.unmeasured_target.unmeasured_interval_factors``; docs/new-gpu.md).
The fitted model and its calibration errors are cached per calls folder and target
(``forecast/per_call_cache``): only the first forecast fits.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from profcast.errors import ProfcastError
from profcast.forecast.per_call_cache import cached_per_call_model
from profcast.ingest.device_figures import neusight_device_figures, read_device_figures
from profcast.ingest.gpu_spec_sheet import SPEC_SHEET_SOURCE, derived_figures
from profcast.ingest.neusight import is_neusight_header
from profcast.ingest.neusight_calls import read_call_folder, read_neusight_calls
from profcast.ingest.trace_calls import read_trace_calls
from profcast.pipeline.unmeasured_target import PER_CALL_FIGURES, unmeasured_interval_factors
from profcast.regressors.call_costs import add_call_costs
from profcast.regressors.per_call import (
    PerCallModel,
    figures_outside_range,
    leave_one_gpu_out_log_errors,
    predict_op_vector,
)

SHAPED_PROFILES = (
    "a NeuSight label CSV (one row per FX node with input_shapes, and its .json beside it) "
    "or a PyTorch trace recorded with record_shapes=True (.json, .json.gz)"
)
TRACE_SUFFIXES = (".json", ".json.gz")
TOP_OPS = 5


def read_shaped_profile(path, anchor: str = "anchor") -> pd.DataFrame:
    """The anchor's per-call records from a profile that carries shapes; one line when it carries none."""
    path = Path(path)
    if path.name.endswith(TRACE_SUFFIXES):
        return add_call_costs(read_trace_calls(path, gpu=anchor))
    try:
        header = path.read_text(encoding="utf-8-sig").splitlines()[:1]
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"--profile {path}: cannot be read ({error})") from None
    if not header or not is_neusight_header(header[0].split(",")):
        raise ProfcastError(f"--profile {path}: --target-gpu needs per-call shapes; expected {SHAPED_PROFILES}")
    return add_call_costs(read_neusight_calls(path))


def profile_share(calls: pd.DataFrame, which) -> float:
    """The percentage of the profile's measured time (``time_us * repeat``) in the calls ``which`` selects."""
    time = (calls["time_us"] * calls["repeat"]).to_numpy(dtype=float)
    return float(100 * time[which].sum() / time.sum()) if time.sum() > 0 else 0.0


def forecast_new_gpu(profile, anchor: str, target_gpu, calls_data, anchor_gpu=None) -> str:
    """The forecast for an unmeasured target as printable lines: step time, interval, top ops, fallbacks."""
    target, derived = derived_figures(read_device_figures(target_gpu))
    missing = target.missing(PER_CALL_FIGURES)
    if missing:
        raise ProfcastError(
            f"--target-gpu {target_gpu}: no {missing[0]} for {target.name}, which the per-call model needs, and "
            f"the spec sheet ({SPEC_SHEET_SOURCE}) cannot derive it; add {', '.join(missing)} to a figures file "
            "of ours (docs/new-gpu.md)"
        )
    anchor_calls = read_shaped_profile(profile, anchor)
    if not Path(calls_data).is_dir():
        raise ProfcastError(
            f"--calls-data {calls_data}: no such folder; pass a NeuSight checkout (scripts/asplos/label/, "
            "scripts/asplos/data/device_configs/) for the per-call model to learn from"
        )
    devices = neusight_device_figures(calls_data)
    anchor_figures = read_device_figures(anchor_gpu, name=anchor) if anchor_gpu is not None else devices.get(anchor)
    if anchor_figures is None:
        raise ProfcastError(
            f"--anchor {anchor}: no figures for it in {calls_data}; pass --anchor-gpu FILE (docs/new-gpu.md)"
        )

    def fit():
        calls, steps = read_call_folder(calls_data)
        measured = add_call_costs(calls[calls["gpu"] != target.name])
        measured_steps = steps[steps["gpu"] != target.name]
        model = PerCallModel().fit(measured, devices, measured_steps)  # the steps give the step-level gap
        return model, leave_one_gpu_out_log_errors(measured, measured_steps, devices)

    with threadpool_limits(limits=1):  # OpenMP threads of the boosting oversubscribe a small machine
        model, log_errors = cached_per_call_model(calls_data, target.name, fit)
    with threadpool_limits(limits=1):
        outside = figures_outside_range(target, [devices[gpu] for gpu in model.gpus_])
        low, high = unmeasured_interval_factors(log_errors, outside_decades=outside)  # the served target's too
        step = model.predict_step_us(anchor_calls, anchor_figures, target)
        ops = predict_op_vector(model, anchor_calls, anchor_figures, target)
    run = step.iloc[0]
    shapes = model.by_kind_and_shapes(anchor_calls)
    anchor_us = float((anchor_calls["time_us"] * anchor_calls["repeat"]).sum())
    lines = [
        f"{target.name}: unmeasured GPU, forecast from its figures ({Path(target_gpu).name}) alone, "
        f"never from a measurement of it",
        *([f"figures its file lacks: {'; '.join(derived)}"] if derived else []),
        f"workload {run['model']}-{run['mode']}-{run['seq_len']}-{run['batchsize']}, anchor {anchor} "
        f"(its calls sum to {anchor_us / 1000:.1f} ms); per-call model fitted on {len(model.gpus_)} measured GPUs",
        f"step time {run['predicted_us'] / 1000:.1f} ms, 80% interval {run['predicted_us'] * low / 1000:.1f}-"
        f"{run['predicted_us'] * high / 1000:.1f} ms (calibrated leave-one-GPU-out"
        + (f"; widened: its figures lie {outside:.2f} decades outside the measured GPUs')" if outside else ")"),
        f"calls {len(anchor_calls)}: {profile_share(anchor_calls, model.unseen_kinds(anchor_calls)):.1f}% of the "
        "profile's time in ops the measured data never had (forecast from their op class, category and shapes), "
        f"{profile_share(anchor_calls, shapes):.1f}% in calls of uncounted work forecast from their kind and shapes "
        f"(roofline on bytes), {profile_share(anchor_calls, ~anchor_calls['known'].to_numpy() & ~shapes):.1f}% in "
        f"{int(run['unknown_calls']) - int(shapes.sum())} calls of unknown work (scaled by the known calls' ratio)",
        "largest ops (ms per step): "
        + ", ".join(f"{name} {value / 1000:.2f}" for name, value in ops.head(TOP_OPS).items()),
    ]
    return "\n".join(lines)
