"""A target's forecast interval and size what-if, learned from the held-out predictions cross-validation made.

The interval (ConformalInterval, 10%-90% quantiles of held-out log residuals) is calibrated on the
rows each fold held out, so it speaks for models the regressor never saw. Its coverage is measured
cross-conformally: each fold's rows against bounds calibrated on the other folds' residuals only.

The size what-if (SizeWhatIf) is fitted once on every paired row for the served model. Its own
interval is calibrated the same way on held-out what-if forecasts: for each fold, a latency-only
SizeWhatIf fitted on the training rows scales the fold's held-out step-time forecasts to every other
size of the same job on the target, against the target's median step time there; residuals are
stratified by how far the size moves (``size_move``).
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError
from profcast.pipeline.metrics import mape
from profcast.pipeline.parallel import run_fits
from profcast.regressors.intervals import ConformalInterval, coverage, log_residuals, mean_width
from profcast.regressors.whatif import NO_SIZE_PAIRS, SizeWhatIf, input_size, size_move, workload_medians
from profcast.schema import BATCH_LATENCY, WORKLOAD_KEYS

log = logging.getLogger(__name__)

# The what-if interval is calibrated on at most this many folds: held-out groups (models) are dealt
# round-robin into them, so each calibration fit still never sees the models it is scored on, at a
# third of leave-one-model-out's fits on the 12 PROFET models.
WHATIF_CALIBRATION_FOLDS = 4


def size_grid(keys: pd.DataFrame) -> dict[str, bool]:
    """Which sizes the data varies within a job: several batch sizes, several (known) input sizes."""
    batches = keys.groupby(["dataset", "model", "optimizer"])["batchsize"].nunique()
    sizes = keys.assign(size=[input_size(d) for d in keys["dataset"]]).dropna(subset=["size"])
    inputs = sizes.groupby(["model", "optimizer"])["size"].nunique() if len(sizes) else pd.Series(dtype=int)
    return {"batchsize": bool((batches >= 2).any()), "input_size": bool((inputs >= 2).any())}


# The one-profile interval treats each held-out fold's residuals as one group (a model misjudged on
# all its runs alike); the what-if intervals pool their rows. Measured on the 12 PROFET pairs, the
# grouped calibration brought the one-profile interval from 74-78% to 78-85% coverage, but took the
# what-if's largest size moves (2^±4) past 85% where pooled rows cover 77-80%: a what-if residual is
# mostly the size scaling's own error, which varies within a model more than between models.
def cross_conformal(
    residuals, predicted, fold_of_row, strata=None, by_fold: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds for each fold's rows from the quantiles of the other folds' residuals (NaN when none).

    ``by_fold``: each other fold counts as one held-out group (ConformalInterval ``groups``);
    False pools their rows (the what-if intervals; why: the comment above).
    """
    low, high = np.full(len(predicted), np.nan), np.full(len(predicted), np.nan)
    for fold in np.unique(fold_of_row[fold_of_row >= 0]):
        rows = fold_of_row == fold
        if not np.isfinite(residuals[~rows]).any():
            continue
        groups = fold_of_row[~rows] if by_fold else None
        calibration = ConformalInterval().fit(
            residuals[~rows], None if strata is None else strata[~rows], groups=groups
        )
        low[rows], high[rows] = calibration.bounds(predicted[rows], None if strata is None else strata[rows])
    return low, high


class FitSizeWhatIf:
    """``whatif=sizes`` (conf/whatif/sizes.yaml): fit each target's size what-if (SizeWhatIf, ``max_iter``
    boosting rounds per model) when the data has several sizes per job."""

    enabled = True

    def __init__(self, max_iter: int):
        try:  # SizeWhatIf's own parameter check, now rather than in the first fit after runs opened
            SizeWhatIf(max_iter=max_iter)._validate_params()
        except ValueError as error:
            raise ProfcastError(f"whatif.max_iter: {error}") from None
        self.max_iter = max_iter


class NoSizeWhatIf:
    """``whatif=none`` (conf/whatif/none.yaml): no size what-if, a faster job; the interval is still calibrated."""

    enabled = False


def target_extras(
    paired, folds, held_out, whatif_option: FitSizeWhatIf | NoSizeWhatIf, n_jobs: int = 1
) -> tuple[dict, dict]:
    """(extras for the job model, metrics for the target run) of one target; ``whatif_option``: the
    ``whatif`` option's object (whether to fit the size what-if, and how).

    extras: ``quantity`` (what the interval bounds: batch_latency, else predicted_total),
    ``interval`` (ConformalInterval or None), ``whatif`` (SizeWhatIf or None), ``whatif_interval``
    (ConformalInterval stratified by ``size_move``, or None), ``moves`` ({batchsize, input_size}: bool).
    """
    n = len(paired)
    held = held_out.truth.index.to_numpy()  # positional: the paired frames have a 0..n-1 index
    fold_of_row = np.full(n, -1)
    fold_of_row[held] = held_out.fold
    truth, predicted = np.full(n, np.nan), np.full(n, np.nan)
    if BATCH_LATENCY in held_out.predicted and held_out.predicted[BATCH_LATENCY].notna().any():
        quantity = BATCH_LATENCY
        truth[held] = held_out.truth[BATCH_LATENCY].to_numpy(float)
        predicted[held] = held_out.predicted[BATCH_LATENCY].to_numpy(float)
    else:
        quantity = "predicted_total"
        truth[held], predicted[held] = held_out.true_total, held_out.predicted_total
    residuals = log_residuals(truth, predicted)
    extras = {
        "quantity": quantity,
        "interval": None,
        "whatif": None,
        "whatif_interval": None,
        "moves": {"batchsize": False, "input_size": False},
    }
    metrics = {}
    if np.isfinite(residuals).any():
        extras["interval"] = ConformalInterval().fit(residuals, groups=fold_of_row)
        low, high = cross_conformal(residuals, predicted, fold_of_row)
        metrics.update(interval_coverage=coverage(truth, low, high), interval_width=mean_width(predicted, low, high))
    grid = size_grid(paired.keys)
    if whatif_option.enabled and (grid["batchsize"] or grid["input_size"]):
        started = time.perf_counter()  # timed for the log only: metrics must not vary between equal runs
        whatif, whatif_interval, whatif_metrics = _fit_whatif(
            paired,
            folds,
            predicted if quantity == BATCH_LATENCY else None,
            fold_of_row,
            grid,
            whatif_option.max_iter,
            n_jobs,
        )
        if whatif is None:  # the sizes vary in the keys, but no job has a measured target run at two of them
            log.warning(
                "%s -> %s: no job was measured on the target at two sizes; this model answers no what-if",
                paired.anchor,
                paired.target,
            )
        else:
            extras.update(whatif=whatif, whatif_interval=whatif_interval, moves=grid)
            metrics.update(whatif_metrics)
            log.info(
                "%s -> %s: size what-if fitted in %.1f s", paired.anchor, paired.target, time.perf_counter() - started
            )
    return extras, metrics


def merged_folds(folds, fold_of_row: np.ndarray, n_rows: int, most: int) -> tuple[list, np.ndarray]:
    """At most ``most`` folds: fold i's held-out rows join merged fold i % most, which trains on every other row.

    Returns the merged (train_rows, test_rows) folds and each row's merged fold (-1 stays -1).
    """
    if len(folds) <= most:
        return list(folds), fold_of_row
    merged = []
    for group in range(most):
        test_rows = np.sort(np.concatenate([test for number, (_, test) in enumerate(folds) if number % most == group]))
        merged.append((np.setdiff1d(np.arange(n_rows), test_rows), test_rows))
    return merged, np.where(fold_of_row >= 0, fold_of_row % most, -1)


def _fit_whatif(paired, folds, predicted_latency, fold_of_row, grid, max_iter, n_jobs=1):
    """The served SizeWhatIf (every row) and its interval and metrics from held-out what-if forecasts."""
    keys = paired.keys.reset_index(drop=True)
    anchor, target = paired.anchor_profile.reset_index(drop=True), paired.target_profile.reset_index(drop=True)
    cross_dataset = grid["input_size"]  # else a dataset change is not a size move the model can read
    served = (keys, anchor, target, {"max_iter": max_iter, "cross_dataset": cross_dataset})
    calibrating = predicted_latency is not None
    folds, fold_of_row = merged_folds(folds, fold_of_row, len(keys), WHATIF_CALIBRATION_FOLDS)
    fold_fits = (
        [
            (
                keys.iloc[train_rows],
                anchor.iloc[train_rows],
                target.iloc[train_rows],
                {"max_iter": max_iter, "cross_dataset": cross_dataset, "predict_ops": False},
            )
            for train_rows, _ in folds
        ]
        if calibrating
        else []
    )
    whatif, *fold_whatifs = fitted_whatifs([served, *fold_fits], n_jobs)
    if whatif is None:
        return None, None, {}
    if not calibrating or whatif.latency_model_ is None:
        return whatif, None, {}
    queries = size_queries(keys, target, cross_dataset)
    forecast = np.full(len(queries), np.nan)
    query_fold = fold_of_row[queries["row"].to_numpy()]
    for fold, fold_whatif in enumerate(fold_whatifs):
        mine = np.flatnonzero(query_fold == fold)
        if mine.size == 0 or fold_whatif is None:  # None: the fold's training rows hold no job at two sizes
            continue
        chosen = queries.iloc[mine]
        rows = chosen["row"].to_numpy()
        scale = fold_whatif.log_scale(
            anchor.iloc[rows], chosen["batchsize"], chosen["dataset"], chosen["new_batchsize"], chosen["new_dataset"]
        )
        forecast[mine] = predicted_latency[rows] * np.exp(scale)
    truth = queries["truth"].to_numpy(float)
    strata = size_move(
        queries["batchsize"],
        [input_size(d) for d in queries["dataset"]],
        queries["new_batchsize"],
        [input_size(d) for d in queries["new_dataset"]],
    )
    residuals = log_residuals(truth, forecast)
    if not np.isfinite(residuals).any():
        return whatif, None, {}
    low, high = cross_conformal(residuals, forecast, query_fold, strata, by_fold=False)
    known = np.isfinite(forecast) & np.isfinite(truth)
    metrics = {
        "whatif_batch_latency_mape": mape(truth[known], forecast[known]),
        "whatif_interval_coverage": coverage(truth, low, high),
        "whatif_interval_width": mean_width(forecast, low, high),
    }
    return whatif, ConformalInterval().fit(residuals, strata), metrics


# A target's what-ifs depend on the data, the pairing and the folds, never on the regressor: the
# jobs of a sweep over regressors that run in one process (the basic launcher, or one joblib
# worker taking several jobs) fit each of them once. Keyed by content, so never stale.
_FITTED_WHATIFS: dict = {}
MAX_REMEMBERED_WHATIFS = 512


def fitted_whatifs(specs: list[tuple], n_jobs: int = 1) -> list:
    """For each (keys, anchor, target, params): ``SizeWhatIf(**params).fit(keys, anchor, target)``,
    None where those rows hold no job at two sizes. Fits made earlier in this process are reused;
    the others run through ``run_fits`` (in up to ``n_jobs`` processes when that pays)."""

    keys = [_whatif_key(*spec) for spec in specs]
    missing = [number for number, key in enumerate(keys) if key not in _FITTED_WHATIFS]
    if missing:
        fits = run_fits(_fit_or_none, [specs[number] for number in missing], n_jobs)
        for number, fit in zip(missing, fits):
            if len(_FITTED_WHATIFS) >= MAX_REMEMBERED_WHATIFS:
                _FITTED_WHATIFS.pop(next(iter(_FITTED_WHATIFS)))
            _FITTED_WHATIFS[keys[number]] = fit
    return [_FITTED_WHATIFS[key] for key in keys]


def _whatif_key(keys: pd.DataFrame, anchor: pd.DataFrame, target: pd.DataFrame, params: dict) -> tuple:
    digest = hashlib.sha256()
    for frame in (keys, anchor, target):
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest(), tuple(sorted(params.items()))


def _fit_or_none(keys: pd.DataFrame, anchor: pd.DataFrame, target: pd.DataFrame, params: dict):
    try:
        return SizeWhatIf(**params).fit(keys, anchor, target)
    except ValueError as error:  # no job at two sizes in these rows; any other error is a bug to see
        if str(error).startswith(NO_SIZE_PAIRS):
            return None
        raise


def size_queries(keys: pd.DataFrame, target: pd.DataFrame, cross_dataset: bool) -> pd.DataFrame:
    """Every (paired row, other size of its job on the target) with the target's median step time there."""
    medians = workload_medians(keys, target[[BATCH_LATENCY]])
    other = medians.rename(columns={"batchsize": "new_batchsize", "dataset": "new_dataset", BATCH_LATENCY: "truth"})
    on = ["model", "optimizer"] if cross_dataset else ["model", "optimizer", "dataset"]
    if not cross_dataset:
        other = other.rename(columns={"new_dataset": "dataset"})
    queries = keys[WORKLOAD_KEYS].assign(row=np.arange(len(keys))).merge(other, on=on)
    if not cross_dataset:
        queries["new_dataset"] = queries["dataset"]
    moved = (queries["new_batchsize"] != queries["batchsize"]) | (queries["new_dataset"] != queries["dataset"])
    return queries[moved].reset_index(drop=True)
