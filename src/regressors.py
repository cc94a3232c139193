"""Regressors mapping an anchor profile vector to a target profile vector (and batch latency).

Every regressor the pipeline trains follows one contract: ``fit(anchor_profile, target_profile)``
with DataFrames whose op columns match (``batch_latency`` may ride along on either side), and
``predict(anchor_profile)`` returning an array with one column per ``output_columns_`` entry.
Op columns a profile lacks count as 0; columns never seen in training are ignored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LinearRegression

from src.errors import ProfcastError
from src.schema import BATCH_LATENCY

TARGET_TRANSFORMS = ("none", "log1p")


def build_regressor(regressor_cfg: DictConfig):
    """Instantiate the configured regressor and give it the profile contract above."""
    try:
        estimator = instantiate(regressor_cfg.estimator)
    except Exception as error:  # Hydra wraps the estimator's own complaint
        cause = error.__cause__ or error
        raise ProfcastError(f"regressor '{regressor_cfg.get('name')}' cannot be built from its config: {cause}") from None
    if getattr(estimator, "predicts_profiles", False):
        return estimator  # already speaks profiles and batch latency (e.g. src.transfer)
    return ProfileRegressor(estimator=estimator, target_transform=regressor_cfg.get("target_transform", "none"))


def op_part(profile: pd.DataFrame) -> pd.DataFrame:
    """The op columns of a profile frame, without batch_latency."""
    return profile.drop(columns=[BATCH_LATENCY], errors="ignore")


def aligned_ops(profile: pd.DataFrame, op_columns: list[str]) -> np.ndarray:
    """Reorder a profile to the trained op columns; ops the profile lacks ran 0 us."""
    return profile.reindex(columns=op_columns, fill_value=0.0).to_numpy(dtype=float)


class ProfileRegressor(RegressorMixin, BaseEstimator):
    """Any multi-output sklearn regressor on the op vector, plus a batch-latency mapping.

    The mapping is log(target batch latency) = a + b * log(target vector total), fitted on the
    training rows' measured target vectors and applied to the predicted vector's total.
    """

    def __init__(self, estimator=None, target_transform: str = "none"):
        self.estimator = estimator
        self.target_transform = target_transform

    def fit(self, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame):
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ProfcastError(
                f"unknown regressor.target_transform '{self.target_transform}'; accepted: {', '.join(TARGET_TRANSFORMS)}"
            )
        self.op_columns_ = list(op_part(target_profile).columns)
        model = clone(self.estimator if self.estimator is not None else LinearRegression())
        if self.target_transform == "log1p":
            model = TransformedTargetRegressor(regressor=model, func=np.log1p, inverse_func=np.expm1, check_inverse=False)
        target_ops = target_profile[self.op_columns_].to_numpy(dtype=float)
        self.vector_model_ = model.fit(aligned_ops(anchor_profile, self.op_columns_), target_ops)
        self.latency_model_ = None
        if BATCH_LATENCY in target_profile:
            self.latency_model_ = _fit_latency_mapping(target_ops.sum(axis=1), target_profile[BATCH_LATENCY].to_numpy(float))
        self.output_columns_ = self.op_columns_ + ([BATCH_LATENCY] if self.latency_model_ is not None else [])
        return self

    def predict(self, anchor_profile: pd.DataFrame) -> np.ndarray:
        predicted = np.asarray(self.vector_model_.predict(aligned_ops(anchor_profile, self.op_columns_)), float)
        predicted = predicted.reshape(len(anchor_profile), len(self.op_columns_))
        if self.latency_model_ is None:
            return predicted
        latency = _apply_latency_mapping(self.latency_model_, np.clip(predicted, 0, None).sum(axis=1))
        return np.column_stack([predicted, latency])


def _fit_latency_mapping(vector_total: np.ndarray, batch_latency: np.ndarray) -> LinearRegression | None:
    usable = (vector_total > 0) & (batch_latency > 0) & np.isfinite(batch_latency)
    if usable.sum() < 2:
        return None
    return LinearRegression().fit(np.log(vector_total[usable]).reshape(-1, 1), np.log(batch_latency[usable]))


def _apply_latency_mapping(mapping: LinearRegression, vector_total: np.ndarray) -> np.ndarray:
    log_total = np.log(np.maximum(vector_total, 1e-9)).reshape(-1, 1)
    return np.exp(mapping.predict(log_total))


class MedianRatioRegressor(RegressorMixin, BaseEstimator):
    """The honest baseline: target op time = anchor op time x that op's median training ratio.

    Input and output columns must be the same ops in the same order. An op the anchor did
    not run predicts 0; an op with no usable training ratio uses the overall median ratio.
    """

    def fit(self, X, y):
        X, y = np.asarray(X, float), np.asarray(y, float).reshape(len(X), -1)
        if X.shape != y.shape:
            raise ValueError("MedianRatioRegressor needs the same op columns on input and output")
        both_ran = (X > 0) & (y > 0)
        ratios = np.where(both_ran, y / np.where(both_ran, X, 1.0), np.nan)
        overall = np.nanmedian(ratios) if both_ran.any() else 1.0
        with np.errstate(all="ignore"):
            per_column = np.nanmedian(np.where(both_ran.any(axis=0), ratios, overall), axis=0)
        self.ratios_ = np.where(np.isfinite(per_column), per_column, overall)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, float) * self.ratios_
