"""Any multi-output scikit-learn regressor on the op vector, plus a batch-latency mapping.

Every regressor the pipeline trains follows one contract: ``fit(anchor_profile, target_profile)``
with DataFrames whose op columns match (``batch_latency`` may ride along on either side), and
``predict(anchor_profile)`` returning an array with one column per ``output_columns_`` entry.
Op columns a profile lacks count as 0; columns never seen in training are ignored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from profcast.schema import BATCH_LATENCY, aligned_ops, as_profile, op_part

TARGET_TRANSFORMS = ("none", "log1p")


class ProfileRegressor(RegressorMixin, BaseEstimator):
    """Wraps ``estimator`` to map an anchor profile to a target profile, and predicts batch latency.

    The latency mapping is log(target batch latency) = a + b * log(target vector total), fitted on
    the training rows' measured target vectors and applied to the predicted vector's total.

    Parameters
    ----------
    estimator : multi-output regressor, default=None (LinearRegression)
    target_transform : {"none", "log1p"}, default="none"
        "log1p" fits the estimator on log1p(op time) and inverts its predictions.

    Attributes
    ----------
    op_columns_ : list of str
        The op columns of the vector, in order (input and output).
    vector_model_ : fitted estimator (wrapped in TransformedTargetRegressor for "log1p")
    latency_model_ : LinearRegression or None
        None when the training target had no usable batch_latency.
    output_columns_ : list of str
        ``op_columns_`` plus ``batch_latency`` when it is predicted.
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "target_transform": [StrOptions(set(TARGET_TRANSFORMS))],
    }

    def __init__(self, estimator=None, target_transform: str = "none"):
        self.estimator = estimator
        self.target_transform = target_transform

    def fit(self, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame):
        anchor_profile, target_profile = start_profile_fit(self, anchor_profile, target_profile)
        model = clone(self.estimator if self.estimator is not None else LinearRegression())
        if self.target_transform == "log1p":
            model = TransformedTargetRegressor(
                regressor=model, func=np.log1p, inverse_func=np.expm1, check_inverse=False
            )
        target_ops = target_profile[self.op_columns_].to_numpy(dtype=float)
        self.vector_model_ = model.fit(aligned_ops(anchor_profile, self.op_columns_), target_ops)
        self.latency_model_ = None
        if BATCH_LATENCY in target_profile:
            self.latency_model_ = _fit_latency_mapping(
                target_ops.sum(axis=1), target_profile[BATCH_LATENCY].to_numpy(float)
            )
        self.output_columns_ = self.op_columns_ + ([BATCH_LATENCY] if self.latency_model_ is not None else [])
        self.n_features_in_ = len(self.op_columns_)
        return self

    def predict(self, anchor_profile: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        anchor_profile = as_profile(anchor_profile)
        predicted = np.asarray(self.vector_model_.predict(aligned_ops(anchor_profile, self.op_columns_)), float)
        return self.with_latency(predicted.reshape(len(anchor_profile), len(self.op_columns_)))

    def with_latency(self, predicted: np.ndarray) -> np.ndarray:
        """Predicted op vectors (rows x ``op_columns_``) plus the batch latency they map to, when there is a mapping."""
        if self.latency_model_ is None:
            return predicted
        latency = _apply_latency_mapping(self.latency_model_, np.clip(predicted, 0, None).sum(axis=1))
        return np.column_stack([predicted, latency])


def start_profile_fit(estimator, anchor_profile, target_profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What every profile regressor's ``fit`` does first: check its parameters, take the profiles as
    frames, and record the target's op columns as ``op_columns_``."""
    estimator._validate_params()
    anchor_profile, target_profile = as_profile(anchor_profile), as_profile(target_profile)
    estimator.op_columns_ = list(op_part(target_profile).columns)
    return anchor_profile, target_profile


def _fit_latency_mapping(vector_total: np.ndarray, batch_latency: np.ndarray) -> LinearRegression | None:
    usable = (vector_total > 0) & (batch_latency > 0) & np.isfinite(batch_latency)
    if usable.sum() < 2:
        return None
    return LinearRegression().fit(np.log(vector_total[usable]).reshape(-1, 1), np.log(batch_latency[usable]))


def _apply_latency_mapping(mapping: LinearRegression, vector_total: np.ndarray) -> np.ndarray:
    log_total = np.log(np.maximum(vector_total, 1e-9)).reshape(-1, 1)
    # LinearRegression.predict's own arithmetic without its input checks (a served request paid
    # them once per target); the input is our own finite array. tests/test_serving_speed.py checks
    # it against mapping.predict to the bit.
    return np.exp(log_total @ mapping.coef_ + mapping.intercept_)
