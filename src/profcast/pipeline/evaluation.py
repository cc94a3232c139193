"""Cross-validate one (anchor, target) regressor on held-out groups and score its predictions."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.pipeline.metrics import clip_negative, mape, summarise_errors
from profcast.pipeline.pairing import PairedRuns
from profcast.pipeline.parallel import run_fits
from profcast.schema import BATCH_LATENCY, op_part

# select(anchor_train_ops, target_train_ops) -> the op columns of the vector
ColumnSelector = Callable[[pd.DataFrame, pd.DataFrame], list]


@dataclass
class HeldOutPredictions:
    """Every paired row predicted by the fold that held it out."""

    truth: pd.DataFrame  # target op columns (+ batch_latency)
    predicted: pd.DataFrame  # same shape; NaN where the fold did not select the column
    fold: np.ndarray
    true_total: np.ndarray  # per-row sum over that fold's selected columns
    predicted_total: np.ndarray
    n_clipped: int
    fit_seconds: float
    refit: tuple | None = None  # (model fitted on every row, its columns) when asked for


def vector_frames(paired: PairedRuns, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anchor and target frames restricted to the chosen op columns (+ batch_latency when known)."""
    extra = [BATCH_LATENCY] if BATCH_LATENCY in paired.target_profile else []
    anchor_extra = [BATCH_LATENCY] if BATCH_LATENCY in paired.anchor_profile else []
    return paired.anchor_profile[columns + anchor_extra], paired.target_profile[columns + extra]


def fit_regressor(paired: PairedRuns, rows, make_regressor: Callable, select: ColumnSelector):
    """Select columns on `rows` only, then fit a fresh regressor on them."""
    anchor_rows, target_rows = paired.anchor_profile.iloc[rows], paired.target_profile.iloc[rows]
    columns = select(op_part(anchor_rows), op_part(target_rows))
    anchor, target = vector_frames(paired, columns)
    with regressor_errors_explained(paired, f"fitting on {len(rows)} training rows"):
        model = make_regressor().fit(anchor.iloc[rows], target.iloc[rows])
    return model, columns


@contextmanager
def regressor_errors_explained(paired: PairedRuns, step: str):
    """Turn an estimator's ValueError (e.g. more neighbours than rows) into a user-facing error."""
    try:
        yield
    except ValueError as error:
        raise ProfcastError(f"{paired.anchor} -> {paired.target}: {step} failed: {error}") from None


def predict_frame(model, anchor_profile: pd.DataFrame, index=None) -> pd.DataFrame:
    """The model's prediction as a frame named by its output columns."""
    return pd.DataFrame(model.predict(anchor_profile), columns=model.output_columns_, index=index)


def cross_validate(
    paired: PairedRuns,
    folds,
    make_regressor: Callable,
    select: ColumnSelector,
    n_jobs: int = 1,
    refit: bool = False,
    progress: str | None = None,
) -> HeldOutPredictions:
    """Fit on each fold's training rows, predict its held-out rows, clip negatives to 0.

    Folds run in up to ``n_jobs`` processes (profcast.pipeline.parallel); the answer is the same for
    any ``n_jobs``. With ``refit`` the fit on every row joins them and comes back as ``.refit``;
    ``progress`` names the progress bar (or log lines) counting the fits.
    """

    truth = paired.target_profile
    predicted = pd.DataFrame(np.nan, index=truth.index, columns=truth.columns)
    fold_of_row = np.full(len(truth), -1)
    true_total, predicted_total = np.zeros(len(truth)), np.zeros(len(truth))
    n_clipped, fit_seconds = 0, 0.0
    tasks = [(paired, train_rows, test_rows, make_regressor, select) for train_rows, test_rows in folds]
    if refit:
        tasks.append((paired, np.arange(len(paired)), None, make_regressor, select))
    # Fits of one regressor on as many rows take alike: one probe per job decides on a pool (run_fits).
    kind = (repr(make_regressor), len(paired), len(tasks)) if n_jobs > 1 else None
    fits = run_fits(fit_and_predict, tasks, n_jobs, progress, kind=kind)
    for fold, ((train_rows, test_rows), (_, columns, fold_prediction, seconds)) in enumerate(zip(folds, fits)):
        fit_seconds += seconds
        fold_prediction, clipped = clip_negative(fold_prediction)
        n_clipped += clipped
        predicted.loc[fold_prediction.index, fold_prediction.columns] = fold_prediction
        fold_of_row[test_rows] = fold
        true_total[test_rows] = truth.iloc[test_rows][columns].sum(axis=1)
        predicted_total[test_rows] = fold_prediction[columns].sum(axis=1)
    held = fold_of_row >= 0
    return HeldOutPredictions(
        truth=truth[held],
        predicted=predicted[held],
        fold=fold_of_row[held],
        true_total=true_total[held],
        predicted_total=predicted_total[held],
        n_clipped=n_clipped,
        fit_seconds=fit_seconds,
        refit=fits[-1][:2] if refit else None,
    )


def fit_and_predict(paired: PairedRuns, train_rows, test_rows, make_regressor: Callable, select: ColumnSelector):
    """One fold: (model or None, columns, prediction of ``test_rows``, fit seconds); the model only
    comes back without ``test_rows`` (the refit), so workers do not ship every fold's model."""
    started = time.perf_counter()
    model, columns = fit_regressor(paired, train_rows, make_regressor, select)
    seconds = time.perf_counter() - started
    if test_rows is None:
        return model, columns, None, seconds
    anchor, _ = vector_frames(paired, columns)
    truth = paired.target_profile
    with regressor_errors_explained(paired, f"predicting {len(test_rows)} held-out rows"):
        fold_prediction = predict_frame(model, anchor.iloc[test_rows], truth.index[test_rows])
    return None, columns, fold_prediction, seconds


def score(held_out: HeldOutPredictions, reference: pd.DataFrame) -> tuple[dict[str, float], pd.Series]:
    """Headline metrics (percentages) and per-column MAPE of held-out predictions.

    `reference` (the paired target ops) only sets each op's typical size for false_nonzero_rate.
    """
    metrics, column_mape = summarise_errors(
        op_part(held_out.truth),
        op_part(held_out.predicted),
        op_part(reference),
        held_out.true_total,
        held_out.predicted_total,
    )
    if BATCH_LATENCY in held_out.predicted and held_out.predicted[BATCH_LATENCY].notna().any():
        known = held_out.predicted[BATCH_LATENCY].notna()
        metrics["batch_latency_mape"] = mape(
            held_out.truth[BATCH_LATENCY][known], held_out.predicted[BATCH_LATENCY][known]
        )
    metrics["n_clipped"] = float(held_out.n_clipped)
    metrics["n_test_rows"] = float(len(held_out.truth))
    return metrics, column_mape
