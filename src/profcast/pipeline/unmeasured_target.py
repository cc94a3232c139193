"""A training target nobody measured: its rows forecast by the per-call model from its figures file.

``profcast train data=neusight data.path=FOLDER anchor=... target_gpu=my-gpu.yaml`` (docs/new-gpu.md):
the per-call model (``regressors/per_call``) is fitted on the calls of every measured GPU of the NeuSight
folder the data came from (a GPU named like the target is left out of the calls and the table, so a
measured GPU can be tried as if it were new) and forecasts each anchor run's calls on the target from
its figures. Those forecasts become the target's rows (the same ``Device_<kind>_<phase>`` columns and
``batch_latency`` as a measured run), so the usual regressor learns anchor -> target and the job model
serves the target with the same request as every other one.

What is *not* an accuracy: the regressor's cross-validation against these rows (it says how well the
regressor copies the per-call model). The target's error is the per-call model's leave-one-GPU-out
error on the measured GPUs, and its 80% interval combines the two (``widened_interval``). That
interval is the one ``src.predict --target-gpu`` gives too (``unmeasured_interval_factors``: every GPU
weighs the same, widened when the target's figures lie outside the fitted GPUs'), plus the regressor's
own residual.

``data=neusight`` without ``data.path`` (the cached download) works too: the device configs the
per-call model needs come from NeuSight's kernel-table download into the same cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from profcast.datasets.sources import NeusightData
from profcast.errors import ProfcastError
from profcast.ingest.device_figures import neusight_device_figures, read_device_figures
from profcast.ingest.neusight_calls import read_call_folder
from profcast.ingest.pinned_files import NEUSIGHT_KERNELS
from profcast.regressors.call_costs import add_call_costs
from profcast.regressors.intervals import ConformalInterval
from profcast.regressors.per_call import (
    RUN_KEYS,
    PerCallModel,
    figures_outside_range,
    interval_factors,
    leave_one_gpu_out_log_errors,
    predict_op_vector,
)
from profcast.schema import BATCH_LATENCY, op_columns

log = logging.getLogger(__name__)

MEASURED_TAG = "profcast.target_measured"  # "false" on a target run forecast from figures only
UNMEASURED_TAG = "profcast.unmeasured_targets"  # on the job run: the targets forecast from figures only
LOGO_METRIC = "batch_latency_mape"  # the unmeasured target's error: the per-call model's leave-one-GPU-out MAPE
COPY_PREFIX = "vs_per_call_"  # the regressor's cross-validation against the synthetic rows (not an accuracy)
# What the per-call model reads of a target's figures beside its peaks (its features and range check).
PER_CALL_FIGURES = ("fp32_tflops", "l2_mb", "sm_count", "clock_mhz")


@dataclass
class UnmeasuredTarget:
    """A target forecast from its figures: what it was built from and how wrong such forecasts were."""

    name: str
    figures_file: str
    measured_gpus: list[str]
    logo_log_errors: pd.Series = field(repr=False)  # log(measured / forecast) step time, leave-one-GPU-out, by gpu
    left_out: bool = False  # a GPU of that name was in the data and was left out
    outside_decades: float = 0.0  # how far its figures lie outside the fitted GPUs' (models.per_call)

    @property
    def logo_mape(self) -> float:
        """Mean absolute % error of the per-call model's step time on GPUs it never saw."""
        return float(100 * np.mean(np.abs(np.exp(-self.logo_log_errors) - 1)))

    def note(self) -> str:
        """The line users see: unmeasured, from which figures, fitted on how many GPUs."""
        return (
            f"unmeasured GPU: forecast from its figures ({Path(self.figures_file).name}) by the per-call model "
            f"fitted on {len(self.measured_gpus)} measured GPUs, never from a measurement of it"
        )


def neusight_folder_of(data) -> Path:
    """The NeuSight folder a data source read (its ``path``, or the cache of its download), with label files and device configs."""

    path = getattr(data, "path", None)
    if path is None and isinstance(data, NeusightData):
        # data.load() put the label files in the cache; the device configs come from the kernel tables'
        # download, into the same cache folder (one repository layout): the 9 NVIDIA GPUs of its test set
        path = NEUSIGHT_KERNELS.folder(wanted=lambda entry: "/dataset/test/device_configs/" in entry.path)
    if path is None or not (Path(path) / "scripts" / "asplos" / "label").is_dir():
        raise ProfcastError(
            "target_gpu needs the per-call records of a NeuSight folder: use data=neusight "
            "data.path=<folder with scripts/asplos/label and scripts/asplos/data/device_configs> "
            "(e.g. ../shared/data/neusight); docs/new-gpu.md"
        )
    return Path(path)


def refuse_a_target_that_leaves_out(figures_file, target) -> None:
    """Refuse a ``target`` that names instances but not the GPU of ``figures_file``: its forecast rows would
    feed no model, and the per-call model that makes them takes minutes to train."""
    if target is None or target == "all":
        return
    name = read_device_figures(figures_file).name
    named = [target] if isinstance(target, str) else list(target)
    if name not in named:
        raise ProfcastError(
            f"target_gpu={figures_file} adds {name}, but target={target} leaves it out; use target={name} or target=all"
        )


def target_rows(
    profiles: pd.DataFrame, anchor: str, figures_file, folder, max_iter: int = 200
) -> tuple[pd.DataFrame, UnmeasuredTarget]:
    """(profiles with the target's forecast rows added, what they stand on) for the GPU of ``figures_file``.

    Rows of a GPU named like the target are dropped from ``profiles`` and its calls from the fit.
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter <= 0:
        raise ProfcastError(f"per_call.max_iter {max_iter!r} is not a positive integer (boosting rounds)")
    figures = read_device_figures(figures_file)
    figures.require(PER_CALL_FIGURES, f"the per-call model (target_gpu {figures_file})")
    name = figures.name
    if name == anchor:
        raise ProfcastError(f"target_gpu {figures_file}: names the anchor {anchor!r} itself; pick another GPU")
    calls, steps = read_call_folder(folder)
    devices = neusight_device_figures(folder)
    if anchor not in devices:
        raise ProfcastError(f"anchor={anchor}: no device figures for it in {folder}; the per-call model needs them")
    left_out = bool((profiles["instance_name"] == name).any() or (calls["gpu"] == name).any())
    if left_out:
        log.warning("target_gpu %s: %s is measured in the data; its measurements are left out", figures_file, name)
    profiles = profiles[profiles["instance_name"] != name]
    calls, steps = calls[calls["gpu"] != name], steps[steps["gpu"] != name]
    # Every measured call of the folder, whatever data.mode keeps: efficiency on a device is learned from
    # training and inference calls alike (the benchmark's setting); the rows made are the table's modes.
    calls = add_call_costs(calls[calls["gpu"].isin(devices)])
    anchor_runs = profiles[profiles["instance_name"] == anchor]
    anchor_calls = calls[calls["gpu"] == anchor]
    if anchor_runs.empty or anchor_calls.empty:
        raise ProfcastError(f"anchor={anchor}: no per-call records of it in {folder} to forecast {name} from")
    with threadpool_limits(limits=1):  # OpenMP threads of the boosting oversubscribe a small machine
        model = PerCallModel(max_iter=max_iter).fit(calls, devices, steps)  # the steps give the step-level gap
        errors = leave_one_gpu_out_log_errors(calls, steps, devices, max_iter=max_iter)
        rows = _forecast_rows(model, anchor_runs, anchor_calls, devices[anchor], figures)
    outside = figures_outside_range(figures, [devices[gpu] for gpu in model.gpus_])
    if rows.empty:
        raise ProfcastError(f"anchor={anchor}: none of its runs in the data has per-call records in {folder}")
    target = UnmeasuredTarget(name, str(figures_file), list(model.gpus_), errors, left_out, outside)
    merged = pd.concat([profiles, rows], ignore_index=True)
    ops = op_columns(merged.columns)
    merged[ops] = merged[ops].fillna(0.0)  # an op kind a run lacks (forecast or measured) ran 0 us there
    return merged, target


def _forecast_rows(model, anchor_runs, anchor_calls, anchor_figures, target_figures) -> pd.DataFrame:
    """One forecast row per anchor run that has calls: the anchor row's keys, the target's ops and step time."""
    rows = []
    for keys, run_calls in anchor_calls.groupby(RUN_KEYS, sort=True):
        run = dict(zip(RUN_KEYS, keys))
        matches = anchor_runs[
            (anchor_runs["model"] == run["model"])
            & (anchor_runs["optimizer"] == run["mode"])
            & (anchor_runs["batchsize"] == run["batchsize"])
            & (anchor_runs["dataset"] == f"{run['seq_len']}tokens")
        ]
        if matches.empty:  # a run the data option left out (data.mode)
            continue
        ops = predict_op_vector(model, run_calls, anchor_figures, target_figures)
        step_us = float(model.predict_step_us(run_calls, anchor_figures, target_figures)["predicted_us"].iloc[0])
        keys_of_row = matches.iloc[0][["exp_name", "dataset", "model", "optimizer", "batchsize"]].to_dict()
        rows.append(
            {**keys_of_row, "instance_name": target_figures.name, BATCH_LATENCY: step_us / 1e6, **ops.to_dict()}
        )
    return pd.DataFrame(rows)


def unmeasured_interval_factors(logo_log_errors, outside_decades: float = 0.0, own_log_residuals=(0.0,)):
    """(lower, upper) factors of the 80% interval of a GPU nobody measured: the one method of both paths.

    Its log error is the per-call model's (``logo_log_errors``: leave-one-GPU-out, indexed by ``gpu``)
    plus, for the served target, the regressor's own (``own_log_residuals``; ``src.predict
    --target-gpu`` has none: 0). Taken as independent, the interval is that of every sum of one of
    each, every GPU weighing the same, widened by ``outside_decades`` (``models.per_call.interval_factors``).
    None when there is no finite residual.
    """
    own = np.asarray(own_log_residuals, dtype=float)
    own = own[np.isfinite(own)]
    logo = np.asarray(logo_log_errors, dtype=float)
    if own.size == 0 or logo.size == 0:
        return None
    sums = (logo[:, None] + own[None, :]).ravel()
    if isinstance(logo_log_errors, pd.Series) and logo_log_errors.index.name == "gpu":
        sums = pd.Series(sums, index=pd.Index(np.repeat(logo_log_errors.index.to_numpy(), own.size), name="gpu"))
    return interval_factors(sums, outside_decades=outside_decades)


def widened_interval(logo_log_errors, regressor_log_residuals, outside_decades: float = 0.0):
    """The served target's 80% interval (``unmeasured_interval_factors`` with the regressor's residuals); None without any."""
    factors = unmeasured_interval_factors(logo_log_errors, outside_decades, regressor_log_residuals)
    if factors is None:
        return None
    interval = ConformalInterval()
    interval.quantiles_ = (float(np.log(factors[0])), float(np.log(factors[1])))
    interval.strata_ = {}
    return interval


def relabelled_result(result, target: UnmeasuredTarget):
    """A TargetResult whose errors say what they are: the per-call model's leave-one-GPU-out error as the
    target's error, the regressor's cross-validation against the forecast rows under ``vs_per_call_``,
    the interval widened, no size what-if (it would be learned from forecasts)."""
    predictions = result.predictions
    residuals = np.log(predictions[f"true.{BATCH_LATENCY}"] / predictions[f"pred.{BATCH_LATENCY}"])
    copied = {f"{COPY_PREFIX}{name}": value for name, value in result.metrics.items()}
    result.metrics = {
        LOGO_METRIC: target.logo_mape,
        "logo_runs": float(len(target.logo_log_errors)),
        **copied,
    }
    result.column_mape = result.column_mape.iloc[:0]  # per-op errors against forecasts: not accuracies
    result.predictions = predictions.rename(
        columns=lambda column: column.replace("true.", "per_call.", 1) if column.startswith("true.") else column
    )
    result.params = {
        **result.params,
        "target_measured": False,
        "target_figures": target.figures_file,
        "per_call_gpus": len(target.measured_gpus),
    }
    if result.extras is not None:
        result.extras = {
            **result.extras,
            "quantity": BATCH_LATENCY,
            "interval": widened_interval(target.logo_log_errors, residuals, target.outside_decades),
            "whatif": None,
            "whatif_interval": None,
            "moves": {"batchsize": False, "input_size": False},
        }
    result.unmeasured = target.note()
    return result
