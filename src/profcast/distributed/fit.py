"""Fit the step model's constants to measured step times, and score held-out groups.

The constants are fitted by robust least squares on the relative error (``scipy.optimize.least_squares``,
soft-L1 loss, so a few odd rows do not pull the rest), each bounded to a physical range. Held-out
scores refit with one group (e.g. one model size) left out and forecast that group, for every group
(scikit-learn's ``LeaveOneGroupOut``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from sklearn.model_selection import LeaveOneGroupOut

from profcast.distributed import terms

# Each constant's bounds: efficiencies and exposed fractions may not be negative; the host time
# is a few milliseconds at most; the smooth maximum's sharpness 1 is a plain sum, 20 nearly max.
BOUNDS = {
    "gemm": (0.2, 5.0),
    "attention": (0.05, 20.0),
    "memory": (0.0, 10.0),
    "host_layer_ms": (0.0, 20.0),
    "host_head_ms": (0.0, 20.0),
    "sharpness": (1.0, 20.0),
    "tp": (0.0, 5.0),
    "p2p": (0.0, 5.0),
    "p2p_send_ms": (0.0, 5.0),
    "dp": (0.0, 2.0),
    "optimizer": (0.0, 10.0),
    "step_ms": (0.0, 1000.0),
}


def forecast_ms(raw: pd.DataFrame, constants: dict) -> np.ndarray:
    """Step times (ms) of every row of raw times under ``constants``."""
    return np.asarray(sum(terms.step_terms(raw, constants).values()), dtype=float)


def fit_constants(raw: pd.DataFrame, measured_ms, start: dict, free) -> dict:
    """The constants that best fit ``measured_ms`` (relative error), varying the names in ``free`` from ``start``."""
    free, measured = list(free), np.asarray(measured_ms, dtype=float)

    def relative_errors(values):
        return forecast_ms(raw, start | dict(zip(free, values))) / measured - 1.0

    low = [BOUNDS[name][0] for name in free]
    high = [BOUNDS[name][1] for name in free]
    x0 = np.clip([start[name] for name in free], low, high)
    result = least_squares(relative_errors, x0, bounds=(low, high), loss="soft_l1", f_scale=0.1)
    return start | {name: float(value) for name, value in zip(free, result.x)}


def held_out_forecasts(raw: pd.DataFrame, measured_ms, groups, start: dict, free) -> np.ndarray:
    """Each row's forecast by constants fitted without its group (leave one group out)."""
    measured, forecasts = np.asarray(measured_ms, dtype=float), np.full(len(raw), np.nan)
    for train, test in LeaveOneGroupOut().split(raw, groups=groups):
        constants = fit_constants(raw.iloc[train], measured[train], start, free)
        forecasts[test] = forecast_ms(raw.iloc[test], constants)
    return forecasts


def absolute_percentage_errors(forecast, measured) -> np.ndarray:
    """|forecast - measured| / measured, in percent."""
    measured = np.asarray(measured, dtype=float)
    return np.abs(np.asarray(forecast, dtype=float) - measured) / measured * 100.0
