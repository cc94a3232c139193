"""Forecast intervals: conformal quantiles of log residuals measured on held-out models.

A residual is log(true step time) - log(predicted step time) of a run whose model the predictor had
not seen. The 10% and 90% quantiles of such residuals, added to a new forecast's log, give an 80%
interval that holds for an unseen model as long as the calibration residuals also came from unseen
models (leave-one-model-out or group k-fold, never in-sample). Optional strata (e.g. how far a
what-if moves the batch size) get their own quantiles when they hold enough residuals.

Residuals of one held-out model are not independent: a model the predictor misjudges is misjudged
on all its runs alike. Given the group (held-out fold) of each residual, a residual is read as the
group's bias plus a within-group part, and the quantiles are those of a new group's residual: a
bias drawn from the calibration groups' biases, spread by sqrt(1 + 1/G) around their mean (the
usual allowance for a mean estimated from G groups), plus any group's within-group part. Pooled row
quantiles instead treat thousands of runs of a dozen models as thousands of independent draws, and
on the 12 PROFET pairs covered 74-78% of held-out step times with a nominal 80% (78-85% this way).
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from scipy.stats import t
from sklearn.model_selection import GroupKFold

log = logging.getLogger(__name__)

LOWER, UPPER = 0.1, 0.9  # an 80% interval
# A stratum with fewer calibration residuals than this uses the pooled quantiles.
SMALLEST_STRATUM = 30
# Within-group residuals are summarised by at most this many quantiles before the bias x within
# convolution, and fewer when there are many groups, so it never holds more than MAX_CONVOLUTION sums.
WITHIN_QUANTILES = 1000
MAX_CONVOLUTION = 2_000_000
# Below this many calibration groups the groups' own biases cannot reach a new group's 10%/90% tails
# (with 3 groups, as in NeuSight's 4 models, they span about the middle half): a new group's bias is
# then read from a Student t fitted to them (the textbook prediction interval for one more draw).
# PROFET's 12 models give 11 groups, so its intervals are unchanged.
FEW_GROUPS = 8


class ConformalInterval:
    """Quantiles of held-out log residuals; ``bounds(predicted)`` scales a forecast by them.

    Attributes
    ----------
    quantiles_ : tuple of float
        The pooled (lower, upper) log-residual quantiles.
    strata_ : dict
        Stratum -> (lower, upper) for strata with at least SMALLEST_STRATUM residuals.
    """

    def __init__(self, lower: float = LOWER, upper: float = UPPER):
        self.lower = lower
        self.upper = upper

    def fit(self, log_residuals, strata=None, groups=None) -> "ConformalInterval":
        """Learn the quantiles from residuals of held-out predictions (NaN residuals are skipped).

        ``groups`` (e.g. the fold that held each row out) makes the quantiles those of a new
        group's residual (see the module docstring); without it, or with one group, rows are pooled.
        """
        residuals = np.asarray(log_residuals, dtype=float)
        known = np.isfinite(residuals)
        if not known.any():
            raise ValueError("no finite held-out residual to calibrate an interval on")
        groups = None if groups is None else np.asarray(groups)
        self.quantiles_ = self._quantiles(residuals[known], None if groups is None else groups[known])
        self.strata_ = {}
        if strata is not None:
            strata = np.asarray(strata)
            for stratum in np.unique(strata[known]):
                chosen = known & (strata == stratum)
                if chosen.sum() >= SMALLEST_STRATUM:
                    key = stratum.item() if hasattr(stratum, "item") else stratum
                    self.strata_[key] = self._quantiles(residuals[chosen], None if groups is None else groups[chosen])
        return self

    def _quantiles(self, residuals: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, float]:
        if groups is not None and len(np.unique(groups)) >= 2:
            return self._new_group_quantiles(residuals, groups)
        # Finite-sample conformal levels: widen each tail by one rank so coverage is not optimistic.
        n = residuals.size
        low = max(0.0, np.floor(self.lower * (n + 1)) / n - 1 / n)
        high = min(1.0, np.ceil(self.upper * (n + 1)) / n)
        return float(np.quantile(residuals, low)), float(np.quantile(residuals, high))

    def _new_group_quantiles(self, residuals: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
        """Quantiles of (a calibration group's bias, spread by sqrt(1 + 1/G)) + (a within-group residual)."""
        _, group_of_row = np.unique(groups, return_inverse=True)
        sizes = np.bincount(group_of_row)
        biases = np.bincount(group_of_row, weights=residuals) / sizes
        within = residuals - biases[group_of_row]
        summary = max(10, min(WITHIN_QUANTILES, MAX_CONVOLUTION // biases.size))
        if within.size > summary:
            within = np.quantile(within, (np.arange(summary) + 0.5) / summary)
        centre = biases.mean()
        if 2 <= biases.size < FEW_GROUPS and biases.std(ddof=1) > 0:
            grid = (np.arange(200) + 0.5) / 200
            spread = biases.std(ddof=1) * np.sqrt(1 + 1 / biases.size)
            new_group_biases = centre + spread * t.ppf(grid, df=biases.size - 1)
        else:
            new_group_biases = centre + (biases - centre) * np.sqrt(1 + 1 / biases.size)
        sums = (new_group_biases[:, None] + within[None, :]).ravel()
        return float(np.quantile(sums, self.lower)), float(np.quantile(sums, self.upper))

    def bounds(self, predicted, strata=None) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) around each positive forecast: forecast x exp(lower / upper quantile)."""
        predicted = np.asarray(predicted, dtype=float)
        low_q = np.full(predicted.shape, self.quantiles_[0])
        high_q = np.full(predicted.shape, self.quantiles_[1])
        if strata is not None and self.strata_:
            strata = np.asarray(strata)
            for stratum, (low, high) in self.strata_.items():
                chosen = strata == stratum
                low_q[chosen], high_q[chosen] = low, high
        return predicted * np.exp(low_q), predicted * np.exp(high_q)


def coverage(truth, low, high) -> float:
    """Share (%) of true values inside [low, high], over rows where all three are finite."""
    truth, low, high = (np.asarray(v, dtype=float) for v in (truth, low, high))
    known = np.isfinite(truth) & np.isfinite(low) & np.isfinite(high)
    return (
        float(100 * np.mean((truth[known] >= low[known]) & (truth[known] <= high[known])))
        if known.any()
        else float("nan")
    )


def mean_width(predicted, low, high) -> float:
    """Mean interval width as a percentage of the forecast."""
    predicted, low, high = (np.asarray(v, dtype=float) for v in (predicted, low, high))
    known = np.isfinite(predicted) & (predicted > 0) & np.isfinite(low) & np.isfinite(high)
    return float(100 * np.mean((high[known] - low[known]) / predicted[known])) if known.any() else float("nan")


def log_residuals(truth, predicted) -> np.ndarray:
    """log(truth / predicted); NaN where either is not positive."""
    truth, predicted = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    usable = (truth > 0) & (predicted > 0)
    out = np.full(truth.shape, np.nan)
    out[usable] = np.log(truth[usable] / predicted[usable])
    return out


def leave_group_out_residuals(
    groups, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], truth, n_splits: int = 4
) -> np.ndarray:
    """Held-out log residuals of every row from a group k-fold: ``fit_predict(train_rows, test_rows)``
    fits on the training rows and returns predictions for the test rows. Used to calibrate a model
    that will serve unseen groups (models)."""
    groups = np.asarray(groups)
    truth = np.asarray(truth, dtype=float)
    n_splits = min(n_splits, len(np.unique(groups)))
    residuals = np.full(len(truth), np.nan)
    if n_splits < 2:
        log.warning("one group only: no held-out residuals to calibrate an interval on")
        return residuals
    for train_rows, test_rows in GroupKFold(n_splits=n_splits).split(truth, groups=groups):
        residuals[test_rows] = log_residuals(truth[test_rows], fit_predict(train_rows, test_rows))
    return residuals
