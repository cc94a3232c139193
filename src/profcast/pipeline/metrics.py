"""Error measures on held-out predictions; every rate is a percentage (7.5 means 7.5%)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# A prediction for an op the run never executed counts as a false non-zero when it
# exceeds this share of the op's typical (median non-zero) time.
FALSE_NONZERO_SHARE = 0.01


def clip_negative(predicted: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Op times cannot be negative: clip to 0 and say how many cells were clipped."""
    negative = predicted < 0
    return predicted.mask(negative, 0.0), int(negative.to_numpy().sum())


def per_column_mape(true: pd.DataFrame, predicted: pd.DataFrame) -> pd.Series:
    """MAPE per column over rows whose true value is > 0 (NaN where a column has none)."""
    positive = true > 0
    ape = (predicted - true).abs() / true.where(positive)
    return 100 * ape.where(positive & predicted.notna()).mean()


def cell_ape_median(true: pd.DataFrame, predicted: pd.DataFrame) -> float:
    """Median absolute percentage error over all cells whose true value is > 0."""
    positive = (true > 0) & predicted.notna()
    ape = ((predicted - true).abs() / true.where(positive)).to_numpy()
    values = ape[positive.to_numpy()]
    return float(100 * np.median(values)) if values.size else float("nan")


def wape(true: pd.DataFrame, predicted: pd.DataFrame) -> float:
    """Weighted APE over the whole matrix: sum of |pred - true| over sum of true."""
    known = predicted.notna()
    denominator = true.where(known).sum().sum()
    return (
        float(100 * (predicted - true).abs().where(known).sum().sum() / denominator)
        if denominator > 0
        else float("nan")
    )


def total_mape(true_total: pd.Series | np.ndarray, predicted_total: pd.Series | np.ndarray) -> float:
    """MAPE of the per-row vector sums (rows with a positive true sum)."""
    true_total, predicted_total = np.asarray(true_total, float), np.asarray(predicted_total, float)
    positive = true_total > 0
    if not positive.any():
        return float("nan")
    return float(100 * np.mean(np.abs(predicted_total[positive] - true_total[positive]) / true_total[positive]))


def false_nonzero_rate(true: pd.DataFrame, predicted: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Share of true-zero cells predicted above 1% of the column's median non-zero reference value.

    `reference` gives each op's typical time (use the training targets: a held-out model
    that never runs an op has no non-zero value of its own for it).
    """
    typical = reference.where(reference > 0).median().reindex(true.columns)
    threshold = FALSE_NONZERO_SHARE * typical.fillna(0.0)
    zero_truth = (true == 0) & predicted.notna()
    if not zero_truth.to_numpy().any():
        return 0.0
    false_nonzero = zero_truth & predicted.gt(threshold, axis=1)
    return float(100 * false_nonzero.to_numpy().sum() / zero_truth.to_numpy().sum())


def mape(true: pd.Series | np.ndarray, predicted: pd.Series | np.ndarray) -> float:
    """Plain MAPE over rows with a positive true value (used for batch latency)."""
    return total_mape(true, predicted)


def summarise_errors(
    true: pd.DataFrame,
    predicted: pd.DataFrame,
    reference: pd.DataFrame,
    true_total: np.ndarray | None = None,
    predicted_total: np.ndarray | None = None,
) -> tuple[dict[str, float], pd.Series]:
    """All headline metrics plus the per-column MAPE series.

    Columns a fold did not select are NaN in `predicted` and skipped; totals default
    to the row sums over the predicted cells.
    """
    column_mape = per_column_mape(true, predicted)
    if true_total is None:
        known = predicted.notna()
        true_total = true.where(known).sum(axis=1).to_numpy()
        predicted_total = predicted.sum(axis=1, min_count=1).fillna(0).to_numpy()
    metrics = {
        "mape_mean": float(column_mape.mean()),
        "mape_median": float(column_mape.median()),
        "cell_ape_median": cell_ape_median(true, predicted),
        "wape": wape(true, predicted),
        "total_mape": total_mape(true_total, predicted_total),
        "false_nonzero_rate": false_nonzero_rate(true, predicted, reference),
    }
    return metrics, column_mape
