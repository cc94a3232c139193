"""How far the generated default data agrees with real PROFET measurements, per regressor.

    python -m benchmarks.generated_vs_real [--real PATH] [--regressors rf,knn,dt,lr]

Runs the training pipeline (anchor g3s.xlarge, leave-one-model-out, all columns) on the embedded
generated CNN data and on the real PROFET table, into a throw-away MLflow store, and prints each
regressor's errors averaged over targets side by side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.accuracy import DEFAULT_DATA
from profcast.cli import run_cli
from profcast.config import REPO_ROOT, compose_train_config
from profcast.errors import ProfcastError
from profcast.train import train

SHOWN_METRICS = ("cell_ape_median", "wape", "total_mape", "false_nonzero_rate", "batch_latency_mape")


def mean_errors(overrides: list[str]) -> dict[str, float]:
    """Train one job with the given overrides and average its per-target metrics."""
    cfg = compose_train_config(overrides)
    per_target = pd.DataFrame(train(cfg)).T
    return per_target[list(SHOWN_METRICS)].mean().to_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_DATA, help="the PROFET profile table")
    parser.add_argument("--regressors", default="rf,knn,dt,lr,ratio")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "generated-vs-real.md")
    args = parser.parse_args(argv)
    if not args.real.exists():
        raise ProfcastError(f"real data not found at {args.real}; pass --real PATH")
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
        for regressor in args.regressors.split(","):
            for data_name, data_overrides in (
                ("generated", ["data=embedded"]),
                ("PROFET (real)", ["data=file", f"data.path={args.real}"]),
            ):
                errors = mean_errors(data_overrides + ["anchor=g3s.xlarge", f"regressor={regressor}"])
                rows.append({"regressor": regressor, "data": data_name, **errors})
    table = pd.DataFrame(rows).set_index(["regressor", "data"]).round(1)
    markdown = table.to_markdown()
    print(markdown)
    print(
        f"\nwall time {time.perf_counter() - started:.0f} s; errors in %, mean over targets, anchor g3s.xlarge, leave-one-model-out"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
