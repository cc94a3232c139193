"""The honest baseline: each op's target time is its anchor time times that op's median training ratio."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class MedianRatioRegressor(RegressorMixin, BaseEstimator):
    """Target op time = anchor op time x that op's median anchor->target ratio over training rows.

    Input and output columns must be the same ops in the same order. An op the anchor did not run
    predicts 0; an op with no usable training ratio uses the overall median ratio.

    Attributes
    ----------
    ratios_ : ndarray of shape (n_ops,)
        The per-op median ratio applied by ``predict``.
    """

    _parameter_constraints: dict = {}

    def fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        y = np.asarray(y, float).reshape(len(X), -1)
        if X.shape != y.shape:
            raise ValueError(
                f"MedianRatioRegressor needs the same op columns on input and output; got {X.shape[1]} and {y.shape[1]}"
            )
        both_ran = (X > 0) & (y > 0)
        ratios = np.where(both_ran, y / np.where(both_ran, X, 1.0), np.nan)
        overall = np.nanmedian(ratios) if both_ran.any() else 1.0
        with np.errstate(all="ignore"):
            per_column = np.nanmedian(np.where(both_ran.any(axis=0), ratios, overall), axis=0)
        self.ratios_ = np.where(np.isfinite(per_column), per_column, overall)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return X * self.ratios_
