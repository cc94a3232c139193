"""PROFET's batch-latency predictor, re-implemented as the baseline profcast is measured against."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from profcast.regressors.profile_regressor import start_profile_fit
from profcast.schema import BATCH_LATENCY, aligned_ops


class ProfetLatencyRegressor(RegressorMixin, BaseEstimator):
    """PROFET-style batch-latency predictor: mean of a random forest on the anchor op vector and a
    linear fit on the anchor batch latency. It predicts no op vector (those outputs are NaN).

    Attributes
    ----------
    op_columns_ : list of str
    forest_ : RandomForestRegressor
        Target batch latency from the anchor's op vector.
    line_ : LinearRegression
        Target batch latency from the anchor's batch latency.
    output_columns_ : list of str
        ``op_columns_`` (always NaN) then ``batch_latency``.
    """

    _parameter_constraints: dict = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(self, n_estimators: int = 100, n_jobs: int | None = None, random_state: int = 0):
        self.n_estimators = n_estimators
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame):
        anchor_profile, target_profile = start_profile_fit(self, anchor_profile, target_profile)
        if BATCH_LATENCY not in anchor_profile or BATCH_LATENCY not in target_profile:
            raise ValueError("the profet method needs batch_latency on both the anchor and the target")
        target_latency = target_profile[BATCH_LATENCY].to_numpy(float)
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators, n_jobs=self.n_jobs, random_state=self.random_state
        ).fit(aligned_ops(anchor_profile, self.op_columns_), target_latency)
        self.line_ = LinearRegression().fit(anchor_profile[[BATCH_LATENCY]].to_numpy(float), target_latency)
        self.output_columns_ = self.op_columns_ + [BATCH_LATENCY]
        return self

    def predict(self, anchor_profile: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self)
        from_ops = self.forest_.predict(aligned_ops(anchor_profile, self.op_columns_))
        from_latency = self.line_.predict(anchor_profile[[BATCH_LATENCY]].to_numpy(float))
        vector = np.full((len(anchor_profile), len(self.op_columns_)), np.nan)
        return np.column_stack([vector, (from_ops + from_latency) / 2])
