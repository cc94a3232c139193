"""The kernel model: one measured kernel call's latency on any GPU from its work, its shapes and the GPU's figures.

It learns from the kernel atlas (one row per measured call: ``op_kind``, ``op``, ``precision``,
``phase``, ``batch``/``m``/``n``/``k``, ``flops``, ``bytes``, ``latency_ms`` on a ``gpu``) the call's
log efficiency over its roofline, ``g = log(latency / (roofline + tau))``, where the roofline is
``max(flops / peak, bytes / bandwidth)`` with the peak *of the call's precision and unit* (tensor
cores at bf16/fp8 for a bf16/fp8 GEMM, the FP32 vector peak for an element-wise op). The features
describe the call relative to the GPU (its roofline time, arithmetic intensity over the ridge point,
wave quantisation ``tiles / (ceil(tiles / SMs) * SMs)`` of 128x128 output tiles, bytes over L2) and
the GPU itself (peak, bandwidth, SMs, L2, power), so a GPU nobody measured is described by the same
features as the measured ones. ``with_figures`` joins the figures to the rows; the estimator then
follows scikit-learn's conventions (``fit(X, y)`` with ``y`` the latency in ms, ``predict(X)``).
Matrix calls get more features and a warm-L2 roofline (``matrix_features``); with ``per_family`` (the
default) matrix and vector calls are fitted as two sub-models, so neither family's rows move the other's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor

from profcast.errors import ProfcastError
from profcast.regressors.matrix_features import (
    MATRIX_KINDS,
    is_matrix,
    matrix_features,
    output_tiles,
    units_precision,
    warm_l2_roofline_ms,
    waves_and_efficiency,
)

OP_KINDS = ("bmm", "linear", "gemm", "conv", "attention", "elementwise", "softmax", "layernorm")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4")
PHASES = ("forward", "backward")
TILE = 128  # the output tile edge of the common tensor-core GEMM kernels (cuBLAS/CUTLASS 128x128)
GPU_FEATURES = ("log_peak", "log_bandwidth", "log_sms", "power_w")
CATEGORICAL = ("op_kind", "op", "precision", "phase")
FIGURE_COLUMNS = ("peak_tflops", "bandwidth_gbs", "sm_count", "l2_mb", "power_w")
FAMILIES = {True: "matrix", False: "vector"}  # is_matrix -> the sub-model a call belongs to
FIGURES_NEEDED = "a figures file with this precision's peak (docs/kernels.md)"
# the settings benchmarks/kernels.py measured (docs/kernels.md): what a forecast should fit with, not the
# estimator's defaults (the GPU features measured worse)
MEASURED_SETTINGS = {"max_iter": 150, "learning_rate": 0.15, "gpu_features": False}


def row_peak_tflops(op_kind: str, precision: str, figures) -> float:
    """The peak TFLOPS a call of ``op_kind`` at ``precision`` runs against on a GPU (NaN when its figures lack it).

    Matrix kinds at bf16/fp16/fp8/fp4/tf32 use that precision's tensor peak; FP32 matrix kinds the FP32
    matrix peak (no TF32: NeuSight's runs and PyTorch's default for matmuls); vector kinds the FP32
    vector peak, since element-wise kernels compute in FP32 registers at any storage precision.
    """
    peaks = getattr(figures, "peaks", {}) or {}
    if op_kind in MATRIX_KINDS and precision != "fp32":
        return float(peaks.get(precision, math.nan))
    if op_kind in MATRIX_KINDS and figures.fp32_matrix_tflops:
        return float(figures.fp32_matrix_tflops)
    return float(figures.fp32_tflops)


def with_figures(rows: pd.DataFrame, figures: dict) -> pd.DataFrame:
    """The rows with their GPU's figures as columns (``FIGURE_COLUMNS``); one line when a GPU has none."""
    missing = sorted(set(rows["gpu"]) - set(figures))
    if missing:
        raise ProfcastError(f"no figures for GPU {missing[0]!r}; pass its figures file")
    peak = np.empty(len(rows))
    units = rows["precision"].to_numpy(dtype=object).copy()
    for (gpu, kind, precision), index in rows.groupby(["gpu", "op_kind", "precision"]).indices.items():
        peak[index] = row_peak_tflops(kind, precision, figures[gpu])
        units[index] = units_precision(precision, figures[gpu])
    device = {
        gpu: (f.memory_bandwidth_gbs, f.sm_count, f.l2_mb, getattr(f, "power_w", math.nan))
        for gpu, f in figures.items()
    }
    per_row = np.array([device[gpu] for gpu in rows["gpu"]], dtype=float).reshape(len(rows), 4)
    return rows.assign(
        units_precision=units,
        peak_tflops=peak,
        bandwidth_gbs=per_row[:, 0],
        sm_count=per_row[:, 1],
        l2_mb=per_row[:, 2],
        power_w=per_row[:, 3],
    )


def roofline_ms(rows: pd.DataFrame) -> np.ndarray:
    """Each row's roofline time in ms: max(FLOPs / peak, bytes / bandwidth) on its GPU's figures."""
    compute = rows["flops"].to_numpy(dtype=float) / (rows["peak_tflops"].to_numpy(dtype=float) * 1e12)
    memory = rows["bytes"].to_numpy(dtype=float) / (rows["bandwidth_gbs"].to_numpy(dtype=float) * 1e9)
    return np.fmax(compute, memory) * 1e3


def wave_efficiency(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(waves, efficiency of the last wave) of 128x128 output tiles over the SMs; NaN for vector kinds."""
    waves, efficiency = waves_and_efficiency(output_tiles(rows, TILE, TILE), rows["sm_count"].to_numpy(dtype=float))
    matrix = is_matrix(rows)
    return np.where(matrix, waves, np.nan), np.where(matrix, efficiency, np.nan)


def kernel_features(rows: pd.DataFrame, ops=()) -> pd.DataFrame:
    """The regressor's features of rows that carry their figures; ``ops`` the op names the fit knows."""
    flops = rows["flops"].to_numpy(dtype=float)
    moved = rows["bytes"].to_numpy(dtype=float)
    matrix = is_matrix(rows)
    # a matrix call's bytes that fit in L2 come from L2 (matrix_features): its roofline and intensity count DRAM bytes
    roofline_us = np.where(matrix, warm_l2_roofline_ms(rows), roofline_ms(rows)) * 1e3
    moved_from_memory = np.where(matrix & (moved <= rows["l2_mb"].to_numpy(dtype=float) * 1e6), 0.0, moved)
    peak = rows["peak_tflops"].to_numpy(dtype=float) * 1e12
    bandwidth = rows["bandwidth_gbs"].to_numpy(dtype=float) * 1e9
    waves, efficiency = wave_efficiency(rows)
    return pd.DataFrame(
        {
            "op_kind": pd.Categorical(rows["op_kind"], categories=OP_KINDS).codes,
            "op": pd.Categorical(rows["op"], categories=list(ops)).codes,
            "precision": pd.Categorical(rows.get("units_precision", rows["precision"]), categories=PRECISIONS).codes,
            "phase": pd.Categorical(rows["phase"], categories=PHASES).codes,
            "log_roofline_us": np.log10(roofline_us + 1e-3),
            "log_flops": np.log10(flops + 1),
            "log_bytes": np.log10(moved + 1),
            "intensity_over_ridge": np.log10((flops + 1) / (moved_from_memory + 1)) - np.log10(peak / bandwidth),
            "log_m": np.log10(rows["m"].to_numpy(dtype=float)),
            "log_n": np.log10(rows["n"].to_numpy(dtype=float)),
            "log_k": np.log10(rows["k"].to_numpy(dtype=float)),
            "log_batch": np.log10(rows["batch"].to_numpy(dtype=float)),
            "log_waves": np.log10(waves),
            "wave_efficiency": efficiency,
            "bytes_over_l2": np.log10((moved + 1) / (rows["l2_mb"].to_numpy(dtype=float) * 1e6)),
            "log_peak": np.log10(peak),
            "log_bandwidth": np.log10(bandwidth),
            "log_sms": np.log10(rows["sm_count"].to_numpy(dtype=float)),
            "power_w": rows["power_w"].to_numpy(dtype=float),
            **matrix_features(rows),
        },
        index=rows.index,
    )


class KernelModel(BaseEstimator, RegressorMixin):
    """Learned log efficiency over each kernel call's roofline, fitted on the calls of the measured GPUs."""

    def __init__(
        self,
        tau_us=2.0,
        max_iter=300,
        learning_rate=0.1,
        max_leaf_nodes=63,
        gpu_features=True,
        random_state=0,
        per_family=True,
    ):
        self.tau_us = tau_us
        self.per_family = per_family
        self.gpu_features = gpu_features
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    def _base_ms(self, rows: pd.DataFrame) -> np.ndarray:
        roofline = np.where(is_matrix(rows), warm_l2_roofline_ms(rows), roofline_ms(rows))
        return roofline + self.tau_us / 1e3

    def fit(self, X: pd.DataFrame, y):
        """Fit on atlas rows with their figures (``with_figures``); ``y`` the measured latency in ms."""
        latency = np.asarray(y, dtype=float)
        usable = (latency > 0) & np.isfinite(roofline_ms(X))
        if not usable.any():
            raise ProfcastError("no measured kernel call with a known peak and bandwidth to fit the kernel model on")
        X = X[usable]
        self.gpus_ = sorted(set(X["gpu"]))
        if self.per_family:  # matrix and vector calls each get a model of their own (docs/kernels.md)
            unsplit = clone(self).set_params(per_family=False)
            families = pd.Series(is_matrix(X), index=X.index).map(FAMILIES)
            self.family_models_ = {
                family: clone(unsplit).fit(X[families == family], latency[usable][(families == family).to_numpy()])
                for family in sorted(set(families))
            }
            return self
        self.ops_ = sorted(set(X["op"]))
        features = kernel_features(X, self.ops_)
        # a figure no fitted GPU has (power in NeuSight's configs) is dropped: the booster refuses all-NaN columns
        self.features_ = [column for column in features if features[column].notna().any()]
        if not self.gpu_features:  # only the call relative to the GPU: no figure that names a GPU by itself
            self.features_ = [column for column in self.features_ if column not in GPU_FEATURES]
        self.regressor_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            categorical_features=[c for c in CATEGORICAL if c in self.features_],
            random_state=self.random_state,
        ).fit(features[self.features_], np.log(latency[usable] / self._base_ms(X)))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's forecast latency in ms on its GPU (NaN when its figures lack the precision's peak)."""
        if self.per_family:
            families = pd.Series(is_matrix(X), index=X.index).map(FAMILIES).to_numpy()
            forecast = np.full(len(X), np.nan)
            for family, model in self.family_models_.items():
                if (families == family).any():  # the booster refuses an empty frame
                    forecast[families == family] = model.predict(X[families == family])
            return forecast
        features = kernel_features(X, self.ops_)[self.features_]
        return self._base_ms(X) * np.exp(self.regressor_.predict(features))
