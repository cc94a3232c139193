"""Where transfer's held-out batch-latency error lives: how much of it one number per unseen model would remove.

    python -m benchmarks.error_structure [--data PATH] [--pairs all|A:B,...] [--jobs N] [--markdown OUT]

Leave-one-model-out on every ordered pair, as benchmarks.accuracy. Each held-out run's log error
log(true / predicted latency) is split into the mean over a group of runs (its *bias*) and the rest.
An *oracle* that knew each group's bias, which no predictor has, would be left with the rest; the
table gives that MAPE for groups of growing size: one unseen model, a model at one batch size, a
model at one input size, one workload (its repetitions: the noise). A profile of the same job at
another batch size shares the model and the input size with the first, so what a second profile
can tell is at best that (model, input size) bias.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from benchmarks.accuracy import (
    RESULTS_DIR,
    add_data_arguments,
    build_method,
    chosen_instances,
    data_stem,
    parse_pairs,
    read_benchmark_data,
)
from benchmarks.pair_report import pair_table, print_and_write
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.pipeline.evaluation import cross_validate
from profcast.pipeline.features import AllColumns
from profcast.pipeline.pairing import pair_runs
from profcast.pipeline.splits import GroupSplit
from profcast.schema import BATCH_LATENCY

# Oracle groups: a column name of the table and the keys whose mean error the oracle knows.
ORACLE_GROUPS = {
    "no_oracle": [],
    "per_model": ["model"],
    "per_model_batch": ["model", "batchsize"],
    "per_model_input": ["model", "dataset"],
    "per_workload": ["model", "dataset", "batchsize"],
}


def error_structure_for_pair(profiles: pd.DataFrame, anchor: str, target: str) -> dict:
    """Held-out latency MAPE of transfer, and what remains after each oracle removes its groups' mean log error."""
    paired = pair_runs(profiles, anchor, target, mode="auto")
    if BATCH_LATENCY not in paired.anchor_profile or BATCH_LATENCY not in paired.target_profile:
        raise ProfcastError(f"{anchor} -> {target}: the error structure needs batch_latency on both instances")
    folds = GroupSplit(["model"]).folds(paired.keys)
    regressor = build_method("transfer")
    held_out = cross_validate(paired, folds, partial(clone, regressor), AllColumns().select)
    keys = paired.keys.loc[held_out.truth.index]
    log_error = np.log(
        held_out.truth[BATCH_LATENCY].to_numpy(float) / held_out.predicted[BATCH_LATENCY].to_numpy(float)
    )
    return {"anchor": anchor, "target": target, **oracle_mapes(log_error, keys)}


def oracle_mapes(log_error, keys: pd.DataFrame) -> dict[str, float]:
    """MAPE (%) left by each oracle of ORACLE_GROUPS, given each run's log(true / predicted) and its keys."""
    log_error = pd.Series(np.asarray(log_error, dtype=float), index=keys.index)
    left = {}
    for name, group_keys in ORACLE_GROUPS.items():
        rest = (
            log_error - log_error.groupby([keys[key] for key in group_keys]).transform("mean")
            if group_keys
            else log_error
        )
        left[name] = float(100 * np.mean(np.abs(np.exp(-rest) - 1)))  # |predicted / true - 1|
    return left


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.error_structure", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument(
        "--jobs", type=int, default=-1, help="pairs run in parallel processes (default -1: one per core)"
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="default: benchmarks/results/error-structure-<data stem>.md"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profiles, instances = read_benchmark_data(args.data, args.mode)
    pairs = parse_pairs(args.pairs, chosen_instances(args.instances, instances), profiles, args.min_shared)
    rows = Parallel(n_jobs=args.jobs)(
        delayed(error_structure_for_pair)(profiles, anchor, target) for anchor, target in pairs
    )
    markdown_path = args.markdown or RESULTS_DIR / f"error-structure-{data_stem(args.data)}.md"
    title = f"Transfer's held-out batch-latency MAPE after an oracle removes each group's mean error ({args.data.name})"
    print_and_write(
        pair_table(rows, list(ORACLE_GROUPS)), title, "benchmarks.error_structure", argv, markdown_path, started
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
