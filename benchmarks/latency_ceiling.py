"""How well batch latency could be predicted if the target's busy time were known exactly.

    python -m benchmarks.latency_ceiling [--data PATH] [--pairs all|A:B,...] [--markdown OUT]

The transfer regressor predicts target latency partly from the target busy time it predicts (see
src/models/transfer.py). This benchmark feeds the same latency model the target's *measured* busy time,
which no real predictor has, leave-one-model-out on every ordered pair, for a few leaf sizes. The
best of them per pair (chosen on the held-out errors themselves) is optimistic twice over: what
remains is latency the busy time does not explain (host-side work, launch gaps, input pipeline).
Beside it, ``one_speedup``: every run of the pair forecast with one speed-up factor (the median
target/anchor latency ratio of the very runs scored), the best a pair-wide constant can do; a
predictor that beats it has learned how the speed-up varies between workloads.
Prints one row per pair, the mean and the max, next to the repetition noise floor, and writes the
table under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from benchmarks.accuracy import (
    RESULTS_DIR,
    add_data_arguments,
    chosen_instances,
    data_stem,
    noise_floor,
    parse_pairs,
    read_benchmark_data,
)
from benchmarks.pair_report import pair_table, print_and_write
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.pipeline.metrics import mape
from profcast.pipeline.pairing import pair_runs
from profcast.pipeline.splits import GroupSplit
from profcast.regressors.transfer import TransferRegressor, busy_time_features, time_kinds
from profcast.schema import BATCH_LATENCY, aligned_ops, op_part

# Smallest number of training runs per leaf of the latency model (the transfer regressor's default is 20);
# its other hyper-parameters are the transfer regressor's defaults.
LEAF_SIZES = (5, 20, 100)


def ceiling_for_pair(profiles: pd.DataFrame, anchor: str, target: str) -> dict:
    """Leave-one-model-out latency MAPE given the measured target busy time (per leaf size and the best), and the noise floor."""
    paired = pair_runs(profiles, anchor, target, mode="auto")
    if BATCH_LATENCY not in paired.anchor_profile or BATCH_LATENCY not in paired.target_profile:
        raise ProfcastError(f"{anchor} -> {target}: the latency ceiling needs batch_latency on both instances")
    columns = list(op_part(paired.target_profile).columns)
    anchor_ops = aligned_ops(paired.anchor_profile, columns)
    target_ops = aligned_ops(paired.target_profile, columns)
    anchor_latency = paired.anchor_profile[BATCH_LATENCY].to_numpy(float)
    target_latency = paired.target_profile[BATCH_LATENCY].to_numpy(float)
    features = busy_time_features(anchor_ops, anchor_latency, target_ops, time_kinds(columns))
    log_ratio = np.log(target_latency / anchor_latency)
    folds = GroupSplit(["model"]).folds(paired.keys)
    row = {"anchor": anchor, "target": target}
    for leaf_size in LEAF_SIZES:
        predicted = np.full(len(log_ratio), np.nan)
        for train_rows, test_rows in folds:
            model = (
                TransferRegressor(min_samples_leaf=leaf_size)
                .boosted_model(HistGradientBoostingRegressor, len(train_rows), loss="absolute_error")
                .fit(features[train_rows], log_ratio[train_rows])
            )
            predicted[test_rows] = anchor_latency[test_rows] * np.exp(model.predict(features[test_rows]))
        known = np.isfinite(predicted)
        row[f"leaf_{leaf_size}"] = mape(target_latency[known], predicted[known])
    row["best"] = min(row[f"leaf_{leaf_size}"] for leaf_size in LEAF_SIZES)
    row["one_speedup"] = one_speedup_mape(anchor_latency, target_latency)
    row["noise_floor"] = noise_floor(paired)["batch_latency_mape"]
    return row


def one_speedup_mape(anchor_latency, target_latency) -> float:
    """MAPE of forecasting every run by the anchor's latency times the median target/anchor ratio of these runs."""
    anchor_latency, target_latency = np.asarray(anchor_latency, float), np.asarray(target_latency, float)
    return mape(target_latency, anchor_latency * np.median(target_latency / anchor_latency))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_ceiling", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument(
        "--markdown", type=Path, default=None, help="default: benchmarks/results/latency-ceiling-<data stem>.md"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profiles, instances = read_benchmark_data(args.data, args.mode)
    rows = [
        ceiling_for_pair(profiles, anchor, target)
        for anchor, target in parse_pairs(
            args.pairs, chosen_instances(args.instances, instances), profiles, args.min_shared
        )
    ]
    table = pair_table(rows, [f"leaf_{leaf_size}" for leaf_size in LEAF_SIZES] + ["best", "one_speedup", "noise_floor"])
    markdown_path = args.markdown or RESULTS_DIR / f"latency-ceiling-{data_stem(args.data)}.md"
    title = f"Batch-latency MAPE given the measured target busy time ({args.data.name})"
    print_and_write(table, title, "benchmarks.latency_ceiling", argv, markdown_path, started)
    return 0


if __name__ == "__main__":
    run_cli(main)
