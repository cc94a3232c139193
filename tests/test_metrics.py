"""Each metric on small cases computed by hand."""

import numpy as np
import pandas as pd
import pytest

from profcast.pipeline import metrics

TRUE = pd.DataFrame({"A": [100.0, 200.0, 0.0], "B": [10.0, 0.0, 20.0]})
PRED = pd.DataFrame({"A": [110.0, 150.0, 5.0], "B": [10.0, 0.02, 30.0]})
REFERENCE = pd.DataFrame({"A": [100.0, 300.0, 0.0], "B": [1.0, 3.0, 0.0]})  # medians of non-zeros: A 200, B 2


def test_per_column_mape_skips_zero_truth():
    column_mape = metrics.per_column_mape(TRUE, PRED)
    assert column_mape["A"] == pytest.approx(100 * (0.10 + 0.25) / 2)
    assert column_mape["B"] == pytest.approx(100 * (0.0 + 0.5) / 2)


def test_per_column_mape_is_nan_for_columns_without_positive_truth():
    column_mape = metrics.per_column_mape(pd.DataFrame({"C": [0.0, 0.0]}), pd.DataFrame({"C": [1.0, 0.0]}))
    assert np.isnan(column_mape["C"])


def test_wape_over_whole_matrix():
    absolute_errors = 10 + 50 + 5 + 0 + 0.02 + 10
    assert metrics.wape(TRUE, PRED) == pytest.approx(100 * absolute_errors / 330)


def test_total_mape_on_row_sums():
    true_total, predicted_total = TRUE.sum(axis=1), PRED.sum(axis=1)  # 110, 200, 20 vs 120, 150.02, 35
    expected = 100 * np.mean([10 / 110, 49.98 / 200, 15 / 20])
    assert metrics.total_mape(true_total, predicted_total) == pytest.approx(expected)


def test_false_nonzero_rate_uses_reference_scale():
    # zero-truth cells: A row 2 (pred 5 > 1% of 200 = 2: false) and B row 1 (pred 0.02 <= 1% of 2: fine)
    assert metrics.false_nonzero_rate(TRUE, PRED, REFERENCE) == pytest.approx(50.0)
    assert metrics.false_nonzero_rate(TRUE, TRUE, REFERENCE) == 0.0


def test_cell_ape_median_and_clipping():
    # cell APEs over positive truth: 0.10, 0.25, 0.0, 0.5 -> median 0.175
    assert metrics.cell_ape_median(TRUE, PRED) == pytest.approx(17.5)
    clipped, count = metrics.clip_negative(pd.DataFrame({"A": [-1.0, 2.0], "B": [-0.5, -3.0]}))
    assert count == 3 and (clipped >= 0).all().all()


def test_summary_skips_columns_a_fold_did_not_predict():
    predicted = PRED.copy()
    predicted["B"] = np.nan
    summary, column_mape = metrics.summarise_errors(TRUE, predicted, REFERENCE)
    assert summary["wape"] == pytest.approx(100 * 65 / 300)
    assert np.isnan(column_mape["B"])
    assert summary["total_mape"] == pytest.approx(100 * np.mean([10 / 100, 50 / 200]))
