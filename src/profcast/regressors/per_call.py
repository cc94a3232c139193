"""The per-call model: each op call's time on a GPU from its work (FLOPs, bytes) and the GPU's own figures.

Per call ``c`` on device ``d``: the roofline time ``R_d(c) = max(flops / peak_d, bytes / bandwidth_d)``
(matrix or vector peak by the call's class), plus a floor ``tau_us`` for launch and bookkeeping, is
the base; a gradient-boosted regressor learns the call's log efficiency
``g = log(time / (R_d + tau))`` from the call's class, phase and op category, its FLOPs and bytes, and
two features *relative to the device* (log roofline time, arithmetic intensity over the device's ridge
point), so a GPU it never saw measured is described by the same features as the ones it did. The op
category is the op kind's canonical category (``profcast.vocabulary``: ``dropout``,
``elementwise_activation``, ``data_movement_layout``, ``dense_matmul``, ...), the same for an FX node,
an aten op of a trace and a TensorFlow op; it matters because a cost class mixes calls of very
different cost per counted byte (``Dropout``'s backward runs at about half its roofline on every GPU,
``add``'s is nearly free). A category the fit never saw is a missing value to the regressor. Each
call is weighted by its share of its run's measured time to the power ``share_weight_power``, so the
big calls that make the step count more than the many tiny ones. The forecast:

    t_T(c) = (R_T(c) + tau) * exp(g_T(c) + anchor_weight * (log t_A(c) - log(R_A(c) + tau) - g_A(c)))

``anchor_weight`` 0 forecasts from the call and the target's figures alone (the measured anchor
time is not used); 1 carries the anchor's whole unexplained residual over to the target. Calls of
unknown work (``known`` False) whose kind has a memory-bound canonical category (``BYTES_CATEGORIES``:
normalization, activations, dropout, layout, ...) are forecast from their shapes: the roofline on
bytes on the target (``kind_and_shapes_us``); the others (a category of heavy compute, or none) take
the known calls' predicted/anchor time ratio of the same run. Both are counted. Step time: the calls times their repeats
summed, plus the step-level gap per call (``regressors/step_gap``, learned by ``fit`` from measured steps if given).
The variants measured to choose this design (leave-one-GPU-out) are in docs/new-gpu.md.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor

from profcast.errors import ProfcastError
from profcast.regressors.call_costs import DEFAULT_DTYPE_BYTES, DTYPE_BYTES, OP_CLASSES, elements
from profcast.regressors.step_gap import RUN_KEYS, median_gap_per_call_us, with_step_gap
from profcast.vocabulary import OTHER, load_mapping

MATRIX_CLASSES = ("matmul", "conv")
PHASE_CODES = {"fw": 0, "bw": 1, "acc": 2}
HALF_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
# canonical categories whose calls are bound by the bytes they move: an uncounted call of one is forecast
# by its roofline on bytes; matmul, convolution, recurrent and "other" calls are not (their FLOPs are unknown)
BYTES_CATEGORIES = (
    "normalization", "elementwise_activation", "pooling", "softmax_loss", "embedding", "dropout",
    "optimizer_update", "data_movement_layout",
)  # fmt: skip
# interval widening per decade of the target's figures outside the fitted GPUs' (leave-one-GPU-out,
# docs/new-gpu.md: 0.5 lifts L4 from 54% to 86% coverage and H100 from 77% to 88%, pooled 77% -> 82%)
WIDENING_PER_DECADE = 0.5
RANGE_FIGURES = (
    lambda gpu: gpu.peak_flops(True),
    lambda gpu: gpu.peak_flops(False),
    lambda gpu: gpu.bandwidth,
    lambda gpu: gpu.peak_flops(True) / gpu.bandwidth,
    lambda gpu: gpu.peak_flops(False) / gpu.bandwidth,
    lambda gpu: gpu.l2_mb,
    lambda gpu: gpu.sm_count,
    lambda gpu: gpu.clock_mhz,
)


def call_precisions(calls: pd.DataFrame, figures) -> np.ndarray:
    """Each call's compute precision on a device: ``bf16``/``fp16`` from its dtype, else ``fp32`` or ``tf32``.

    An FP32 convolution runs at TF32 where the device has a TF32 peak (cuDNN's default
    ``torch.backends.cudnn.allow_tf32 = True``); an FP32 matmul stays FP32 (PyTorch's default
    ``torch.backends.cuda.matmul.allow_tf32 = False`` since 1.12). Vector ops compute in FP32 at any dtype.
    """
    dtype = calls["dtype"].to_numpy() if "dtype" in calls else np.full(len(calls), "")
    precision = np.where(np.isin(dtype, list(HALF_DTYPES)), pd.Series(dtype).map(HALF_DTYPES).to_numpy(), "fp32")
    tf32 = "tf32" in (getattr(figures, "peaks", None) or {})
    conv = calls["op_class"].eq("conv").to_numpy()
    precision = np.where(conv & (precision == "fp32") & tf32, "tf32", precision)
    return np.where(calls["op_class"].isin(MATRIX_CLASSES).to_numpy(), precision, "fp32")


def call_peak_flops(calls: pd.DataFrame, figures) -> np.ndarray:
    """Each call's peak FLOP/s on a device: matrix or vector units at its precision (``call_precisions``)."""
    matrix = calls["op_class"].isin(MATRIX_CLASSES).to_numpy()
    peaks = getattr(figures, "peaks", None) or {}
    peak = np.where(matrix, figures.peak_flops(True), figures.peak_flops(False))
    for precision in ("bf16", "fp16", "tf32"):
        if precision in peaks:
            peak = np.where(matrix & (call_precisions(calls, figures) == precision), peaks[precision] * 1e12, peak)
    return peak


def roofline_us(calls: pd.DataFrame, figures) -> np.ndarray:
    """Each call's roofline time on a device, microseconds (0 for calls without work; NaN work counts 0)."""
    peak = call_peak_flops(calls, figures)
    flops = calls["flops"].fillna(0).to_numpy(dtype=float)
    moved = calls["bytes"].fillna(0).to_numpy(dtype=float)
    return np.maximum(flops / peak, moved / figures.bandwidth) * 1e6


def op_categories(kinds) -> list[str]:
    """Each op kind's canonical category (``profcast.vocabulary``'s packaged table; ``other`` if none)."""
    return [_op_category(kind) for kind in kinds]


@lru_cache(maxsize=4096)
def _op_category(kind: str) -> str:
    return _packaged_vocabulary().category(kind) or OTHER


@lru_cache(maxsize=1)
def _packaged_vocabulary():
    return load_mapping()


def call_features(calls: pd.DataFrame, figures, categories=()) -> pd.DataFrame:
    """The efficiency regressor's features of each call on one device; ``categories`` the op categories the fit knows.

    A call whose op category is outside ``categories`` gets code -1, which the regressor reads as missing.
    """
    peak = call_peak_flops(calls, figures)
    flops = calls["flops"].fillna(0).to_numpy(dtype=float)
    moved = calls["bytes"].fillna(0).to_numpy(dtype=float)
    roofline = roofline_us(calls, figures)
    return pd.DataFrame(
        {
            "op_class": pd.Categorical(calls["op_class"], categories=OP_CLASSES).codes,
            "phase": calls["phase"].map(PHASE_CODES).to_numpy(),
            "op_category": pd.Categorical(op_categories(calls["kind"]), categories=list(categories)).codes,
            "log_roofline_us": np.log10(roofline + 1e-3),
            "log_flops": np.log10(flops + 1),
            "log_bytes": np.log10(moved + 1),
            "intensity_over_ridge": np.log10((flops + 1) / (moved + 1)) - np.log10(peak / figures.bandwidth),
        },
        index=calls.index,
    )


def run_share_weights(calls: pd.DataFrame, power: float) -> np.ndarray:
    """Each call's share of its run's measured time (``time_us * repeat``), to the ``power`` (0: all 1)."""
    total = calls["time_us"] * calls["repeat"]
    share = total / total.groupby([calls[key] for key in ["gpu", *RUN_KEYS]]).transform("sum")
    return share.to_numpy(dtype=float) ** power


class PerCallModel(BaseEstimator, RegressorMixin):
    """Learned efficiency over a per-call roofline, fitted on the calls of every measured GPU given."""

    def __init__(
        self,
        tau_us=2.0,
        anchor_weight=0.0,
        max_iter=200,
        learning_rate=0.05,
        share_weight_power=0.5,
        random_state=0,
        step_gap=True,
    ):
        self.tau_us = tau_us
        self.step_gap = step_gap
        self.anchor_weight = anchor_weight
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.share_weight_power = share_weight_power
        self.random_state = random_state

    def fit(self, calls: pd.DataFrame, devices: dict, steps: pd.DataFrame | None = None):
        """Fit on measured calls (columns of ``ingest/neusight_calls`` + ``call_costs``) of GPUs in ``devices``;
        ``steps`` (``gpu``, run keys, ``e2e_us``) the same runs' measured steps, for the step-level gap."""
        self.call_gap_us_ = median_gap_per_call_us(calls, steps) if self.step_gap and steps is not None else 0.0
        calls = calls[calls["known"] & (calls["time_us"] > 0)]
        missing = sorted(set(calls["gpu"]) - set(devices))
        if missing:
            raise ProfcastError(f"no figures for measured GPU {missing[0]!r}; add its figures file")
        if calls.empty:
            raise ProfcastError("no measured call of known work to fit the per-call model on")
        self.categories_ = sorted(set(op_categories(calls["kind"].unique())))
        features, targets, weights = [], [], []
        for gpu, group in calls.groupby("gpu", sort=True):
            features.append(call_features(group, devices[gpu], self.categories_))
            weights.append(run_share_weights(group, self.share_weight_power))
            targets.append(np.log(group["time_us"].to_numpy() / (roofline_us(group, devices[gpu]) + self.tau_us)))
        self.regressor_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            categorical_features=[0, 1, 2],
            random_state=self.random_state,
        ).fit(
            pd.concat(features),
            np.concatenate(targets),
            sample_weight=np.concatenate(weights),
        )
        self.gpus_ = sorted(set(calls["gpu"]))
        self.kinds_ = sorted(set(calls["kind"]))
        return self

    def unseen_kinds(self, calls: pd.DataFrame) -> np.ndarray:
        """True for each call of known work whose op kind no fitted call had: forecast from its class and shapes."""
        return calls["known"].to_numpy() & ~calls["kind"].isin(self.kinds_).to_numpy()

    def log_efficiency(self, calls: pd.DataFrame, figures) -> np.ndarray:
        """g: the predicted log(time / (roofline + tau)) of each call on a device."""
        return self.regressor_.predict(call_features(calls, figures, self.categories_))

    def predict_calls(self, anchor_calls: pd.DataFrame, anchor_figures, target_figures) -> np.ndarray:
        """Each anchor call's forecast time on the target, microseconds (unknown calls by kind and shapes, or ratio)."""
        base_target = roofline_us(anchor_calls, target_figures) + self.tau_us
        g_target = self.log_efficiency(anchor_calls, target_figures)
        log_time = np.log(base_target) + g_target
        if self.anchor_weight:
            base_anchor = roofline_us(anchor_calls, anchor_figures) + self.tau_us
            measured = anchor_calls["time_us"].clip(lower=1e-3).to_numpy()
            residual = np.log(measured) - np.log(base_anchor) - self.log_efficiency(anchor_calls, anchor_figures)
            log_time = log_time + self.anchor_weight * residual
        predicted = np.exp(log_time)
        by_shapes = self.by_kind_and_shapes(anchor_calls)
        predicted[by_shapes] = kind_and_shapes_us(anchor_calls[by_shapes], target_figures, self.tau_us)
        return _unknown_by_ratio(anchor_calls, predicted, ~by_shapes)

    def by_kind_and_shapes(self, calls: pd.DataFrame) -> np.ndarray:
        """True for each call of unknown work forecast by its roofline on bytes (a ``BYTES_CATEGORIES`` kind)."""
        unknown = ~calls["known"].to_numpy()
        categories = np.array(op_categories(calls["kind"]) if unknown.any() else [""] * len(calls))
        return unknown & np.isin(categories, BYTES_CATEGORIES)

    def predict_step_us(self, anchor_calls: pd.DataFrame, anchor_figures, target_figures) -> pd.DataFrame:
        """Per run of the anchor calls: forecast step time (us) on the target and how many calls fell back."""
        frame = anchor_calls[RUN_KEYS].copy()
        frame["predicted_us"] = (
            self.predict_calls(anchor_calls, anchor_figures, target_figures) * anchor_calls["repeat"]
        )
        frame["unknown_calls"] = (~anchor_calls["known"]).astype(int)
        frame["calls"] = anchor_calls["repeat"]
        step = frame.groupby(RUN_KEYS, as_index=False)[["predicted_us", "unknown_calls", "calls"]].sum()
        step["predicted_us"] = with_step_gap(step["predicted_us"], step["calls"], getattr(self, "call_gap_us_", 0.0))
        return step.drop(columns="calls")


def roofline_step_us(calls: pd.DataFrame, figures) -> pd.DataFrame:
    """The roofline-only forecast: per run, the sum of the calls' roofline times (no learned efficiency)."""
    frame = calls[RUN_KEYS].copy()
    frame["predicted_us"] = roofline_us(calls, figures) * calls["repeat"]
    return frame.groupby(RUN_KEYS, as_index=False)["predicted_us"].sum()


def kind_and_shapes_us(calls: pd.DataFrame, figures, tau_us: float) -> np.ndarray:
    """Roofline on bytes of calls of uncounted work, µs: every input read and the largest written once, plus tau."""
    moved = [
        (sum(map(elements, tensors)) + max(map(elements, tensors), default=0))
        * DTYPE_BYTES.get(dtype, DEFAULT_DTYPE_BYTES)
        for tensors, dtype in (
            ([s for s in shapes if isinstance(s, tuple)], dtype)
            for shapes, dtype in zip(calls["input_shapes"], calls["dtype"])
        )
    ]
    return np.asarray(moved, dtype=float) / figures.bandwidth * 1e6 + tau_us


def _unknown_by_ratio(calls: pd.DataFrame, predicted: np.ndarray, by_ratio=None) -> np.ndarray:
    """Calls of unknown work (those of ``by_ratio``): their anchor time times the known calls' predicted/anchor ratio."""
    known = calls["known"].to_numpy()
    replaced = ~known if by_ratio is None else ~known & np.asarray(by_ratio)
    if not replaced.any():
        return predicted
    weighted = calls[RUN_KEYS].assign(
        predicted=np.where(known, predicted * calls["repeat"], 0.0),
        anchor=np.where(known, calls["time_us"] * calls["repeat"], 0.0),
    )
    sums = weighted.groupby(RUN_KEYS)[["predicted", "anchor"]].transform("sum")
    ratio = (sums["predicted"] / sums["anchor"].where(sums["anchor"] > 0)).fillna(1.0).to_numpy()
    return np.where(replaced, calls["time_us"].to_numpy() * ratio, predicted)


def predict_op_vector(model: PerCallModel, anchor_calls: pd.DataFrame, anchor_figures, target_figures) -> pd.Series:
    """The forecast per-op vector on the target: ``Device_<kind>_<phase>`` sums (us per step) of the calls."""
    predicted = model.predict_calls(anchor_calls, anchor_figures, target_figures) * anchor_calls["repeat"]
    columns = "Device_" + anchor_calls["kind"] + "_" + anchor_calls["phase"]
    return pd.Series(predicted, index=anchor_calls.index).groupby(columns.to_numpy()).sum().sort_values(ascending=False)


def interval_factors(log_errors, coverage: float = 0.8, outside_decades: float = 0.0) -> tuple[float, float]:
    """Multiplicative (lower, upper) factors of a central interval from held-out log(measured / forecast).

    A Series indexed by GPU (what :func:`leave_one_gpu_out_log_errors` returns) weighs every GPU the
    same, whatever its number of runs: a new GPU is one more GPU, and its errors move together (one
    GPU's forecasts are mostly all too fast or all too slow), so a GPU with many runs must not set the
    interval alone. Any other array weighs every error the same (``np.quantile``).
    ``outside_decades`` (:func:`figures_outside_range`) widens both bounds in log space by
    ``1 + WIDENING_PER_DECADE * outside_decades``: the regressor cannot extrapolate, so a target whose
    figures lie outside the fitted GPUs' is less certain than the calibration GPUs were.
    """
    values = np.asarray(log_errors, dtype=float)
    if values.size == 0:
        raise ProfcastError("no held-out forecast to calibrate the interval on")
    tail = (1 - coverage) / 2
    if isinstance(log_errors, pd.Series) and log_errors.index.name == "gpu":
        weights = 1.0 / log_errors.groupby(level="gpu").transform("size").to_numpy(dtype=float)
        low, high = weighted_quantiles(values, weights, [tail, 1 - tail])
    else:
        low, high = np.quantile(values, [tail, 1 - tail])
    widen = 1.0 + WIDENING_PER_DECADE * outside_decades
    return float(np.exp(low * widen)), float(np.exp(high * widen))


def figures_outside_range(target, fitted) -> float:
    """Decades (log10) by which the target's figures lie outside the fitted GPUs' range; 0 inside.

    The largest over peak FLOPs (matrix and vector), memory bandwidth, both ridge points, L2, SM count
    and clock: L4 is 0.55 outside NeuSight's other GPUs (its vector ridge point, 104 FLOP/byte, against
    at most 30, P4's), H100 0.33 (its vector peak, 67 TFLOPS against at most 31, L4's).
    """
    fitted = list(fitted)
    if not fitted:
        raise ProfcastError("no fitted GPU to compare the target's figures with")
    worst = 0.0
    for figure in RANGE_FIGURES:
        value = np.log10(figure(target))
        seen = [np.log10(figure(gpu)) for gpu in fitted]
        worst = max(worst, min(seen) - value, value - max(seen))
    return float(worst)


def weighted_quantiles(values, weights, quantiles) -> np.ndarray:
    """Quantiles of weighted values: each value sits at the middle of its weight's span of the cumulative weight."""
    order = np.argsort(values)
    values, weights = np.asarray(values, dtype=float)[order], np.asarray(weights, dtype=float)[order]
    middle = (np.cumsum(weights) - weights / 2) / weights.sum()
    return np.interp(quantiles, middle, values)


def leave_one_gpu_out_log_errors(calls: pd.DataFrame, steps: pd.DataFrame, devices: dict, **params) -> pd.Series:
    """log(measured / forecast) step time of every run of every measured GPU, forecast by a model that never saw it.

    ``steps`` holds the measured step times (``e2e_us``) per ``gpu`` and run; the forecast is from
    the figures alone (the GPU's own calls give the shapes, their times are not read). The Series is
    indexed by ``gpu``, so :func:`interval_factors` weighs the GPUs the same.
    """
    errors = []
    for gpu in sorted(set(steps["gpu"]) & set(calls["gpu"])):
        model = PerCallModel(**params).fit(calls[calls["gpu"] != gpu], devices, steps[steps["gpu"] != gpu])
        own = calls[calls["gpu"] == gpu]
        forecast = model.set_params(anchor_weight=0.0).predict_step_us(own, devices[gpu], devices[gpu])
        joined = forecast.merge(steps[steps["gpu"] == gpu], on=RUN_KEYS)
        errors.append(
            pd.Series(np.log(joined["e2e_us"] / joined["predicted_us"]).to_numpy(), index=[gpu] * len(joined))
        )
    if not errors:
        raise ProfcastError("no measured GPU with step times to calibrate the interval on")
    return pd.concat(errors).rename_axis("gpu")
