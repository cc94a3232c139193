"""The transfer family of the accuracy benchmark: intervals, a second profile, size what-ifs, PROFET's scaler.

Called by ``benchmarks.accuracy`` with the fold models it already fitted for ``transfer``, so no
transfer model is fitted twice. Every number is leave-one-model-out: for the fold holding out model
m, the extra models (second-profile latency, size what-if, PROFET's scaler) are fitted on the other
models' rows, and the interval for m's runs is calibrated on the other models' held-out residuals
(cross-conformal: no residual of m itself).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.pipeline.calibration import cross_conformal, size_queries
from profcast.pipeline.metrics import mape
from profcast.pipeline.pairing import PairedRuns
from profcast.regressors.intervals import coverage, log_residuals, mean_width
from profcast.regressors.profet_scaler import ProfetBatchScaler
from profcast.regressors.second_profile import SecondProfileLatency, second_profile_rows
from profcast.regressors.whatif import SizeWhatIf, workload_medians
from profcast.schema import BATCH_LATENCY, op_part

BUCKETS = (1, 2, 3, 4)  # |log2(b'/b)| reported


def transfer_family(paired: PairedRuns, folds, models: list) -> list[dict]:
    """Records for transfer's interval, transfer_2profiles, whatif and profet_scaler on one pair.

    ``models[f]`` is the transfer regressor fitted on fold f's training rows. The first record is
    the interval fields to merge into transfer's own record.
    """
    if BATCH_LATENCY not in paired.anchor_profile or BATCH_LATENCY not in paired.target_profile:
        return []
    truth = paired.target_profile[BATCH_LATENCY].to_numpy(float)
    predicted = np.full(len(truth), np.nan)
    predicted_ops = np.full((len(truth), op_part(paired.target_profile).shape[1]), np.nan)
    fold_of_row = np.full(len(truth), -1)
    for fold, ((_, test_rows), model) in enumerate(zip(folds, models)):
        frame = pd.DataFrame(model.predict(paired.anchor_profile.iloc[test_rows]), columns=model.output_columns_)
        predicted[test_rows] = frame[BATCH_LATENCY].to_numpy(float)
        predicted_ops[test_rows] = (
            frame.reindex(columns=op_part(paired.target_profile).columns, fill_value=0.0).clip(lower=0).to_numpy(float)
        )
        fold_of_row[test_rows] = fold
    low, high = cross_conformal(log_residuals(truth, predicted), predicted, fold_of_row)
    interval = {"interval_coverage": coverage(truth, low, high), "interval_width": mean_width(predicted, low, high)}
    records = [interval, two_profiles(paired, folds, predicted, predicted_ops, fold_of_row)]
    return records + size_what_ifs(paired, folds, predicted, fold_of_row)


def two_profiles(paired: PairedRuns, folds, predicted, predicted_ops, fold_of_row) -> dict:
    """transfer_2profiles: each run's one-profile latency averaged (log space) with the second-profile model."""
    keys = paired.keys.reset_index(drop=True)
    anchor, target = paired.anchor_profile.reset_index(drop=True), paired.target_profile.reset_index(drop=True)
    truth = target[BATCH_LATENCY].to_numpy(float)
    anchor_latency = anchor[BATCH_LATENCY].to_numpy(float)
    combined = predicted.copy()
    every, chosen = second_profile_rows(keys, every=True), second_profile_rows(keys)
    fit_seconds = 0.0
    import time

    for train_rows, test_rows in folds:
        train = every[every["row"].isin(train_rows)]
        test = chosen[chosen["row"].isin(test_rows)]
        if train.empty or test.empty:
            continue
        started = time.perf_counter()
        model = SecondProfileLatency().fit(
            anchor.iloc[train["row"]],
            anchor.iloc[train["second_row"]],
            target.iloc[train["row"]],
            train["batchsize"],
            train["second_batchsize"],
        )
        fit_seconds += time.perf_counter() - started
        rows = test["row"].to_numpy()
        second = model.predict(
            anchor.iloc[rows],
            anchor.iloc[test["second_row"]],
            predicted_ops[rows],
            test["batchsize"],
            test["second_batchsize"],
        )
        combined[rows] = anchor_latency[rows] * np.exp((np.log(predicted[rows] / anchor_latency[rows]) + second) / 2)
    held = fold_of_row >= 0
    low, high = cross_conformal(log_residuals(truth, combined), combined, fold_of_row)
    n_second = int(chosen["row"].isin(np.flatnonzero(held)).sum())
    return {
        "method": "transfer_2profiles",
        "n_test_rows": int(held.sum()),
        "batch_latency_mape": mape(truth[held], combined[held]),
        "interval_coverage": coverage(truth, low, high),
        "interval_width": mean_width(combined, low, high),
        "fit_seconds": fit_seconds,
        "rows_with_second_profile": n_second,
    }


def size_what_ifs(paired: PairedRuns, folds, predicted, fold_of_row) -> list[dict]:
    """whatif and profet_scaler records per |log2(b'/b)| bucket: each held-out anchor run forecast at
    every other batch size of its job on the target, against the target's median latency there."""
    keys = paired.keys.reset_index(drop=True)
    anchor, target = paired.anchor_profile.reset_index(drop=True), paired.target_profile.reset_index(drop=True)
    queries = size_queries(keys, target, cross_dataset=False)  # other batch sizes of the same dataset
    queries["bucket"] = (
        np.abs(np.log2(queries["new_batchsize"].astype(float) / queries["batchsize"].astype(float))).round().astype(int)
    )
    forecasts = {"whatif": np.full(len(queries), np.nan), "profet_scaler": np.full(len(queries), np.nan)}
    query_fold = fold_of_row[queries["row"].to_numpy()]
    for fold, (train_rows, test_rows) in enumerate(folds):
        mine = np.flatnonzero(query_fold == fold)
        if mine.size == 0:
            continue
        rows = queries["row"].to_numpy()[mine]
        batch, new_batch = queries["batchsize"].to_numpy()[mine], queries["new_batchsize"].to_numpy()[mine]
        dataset = queries["dataset"].to_numpy()[mine]
        what_if = SizeWhatIf(predict_ops=False).fit(
            keys.iloc[train_rows], anchor.iloc[train_rows], target.iloc[train_rows]
        )
        forecasts["whatif"][mine] = predicted[rows] * np.exp(
            what_if.log_scale(anchor.iloc[rows], batch, dataset, new_batch, dataset)
        )
        scaler = ProfetBatchScaler().fit(
            workload_medians(keys.iloc[train_rows], target.iloc[train_rows][[BATCH_LATENCY]])
        )
        forecasts["profet_scaler"][mine] = predicted[rows] * np.exp(scaler.log_scale(batch, new_batch))
    records = []
    truth, bucket = queries["truth"].to_numpy(float), queries["bucket"].to_numpy()
    for method, forecast in forecasts.items():
        low, high = cross_conformal(log_residuals(truth, forecast), forecast, query_fold, strata=bucket, by_fold=False)
        for ratio in BUCKETS:
            rows = (bucket == ratio) & np.isfinite(forecast)
            if not rows.any():
                continue
            records.append(
                {
                    "method": method,
                    "batch_ratio_log2": ratio,
                    "n_test_rows": int(rows.sum()),
                    "batch_latency_mape": mape(truth[rows], forecast[rows]),
                    "interval_coverage": coverage(truth[rows], low[rows], high[rows]),
                    "interval_width": mean_width(forecast[rows], low[rows], high[rows]),
                }
            )
    return records
