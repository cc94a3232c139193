"""How far the generated default data agrees with real PROFET measurements, per regressor.

    python -m benchmarks.generated_vs_real [--real PATH] [--regressors rf,knn,dt,lr]

Runs the training pipeline (anchor g3s.xlarge, leave-one-model-out, all columns) on the embedded
generated CNN data and on the real PROFET table, into a throw-away MLflow store, and prints each
regressor's errors averaged over targets side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from benchmarks.accuracy import DEFAULT_DATA
from src.errors import ProfcastError
from src.train import train

REPO = Path(__file__).resolve().parents[1]
SHOWN_METRICS = ("cell_ape_median", "wape", "total_mape", "false_nonzero_rate", "batch_latency_mape")


def mean_errors(overrides: list[str]) -> dict[str, float]:
    """Train one job with the given overrides and average its per-target metrics."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose(config_name="train", overrides=overrides + ["log_model=false"])
    per_target = pd.DataFrame(train(cfg)).T
    return per_target[list(SHOWN_METRICS)].mean().to_dict()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_DATA, help="the PROFET profile table")
    parser.add_argument("--regressors", default="rf,knn,dt,lr,ratio")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "generated-vs-real.md")
    args = parser.parse_args(argv)
    if not args.real.exists():
        print(f"benchmarks.generated_vs_real: error: real data not found at {args.real}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
        for regressor in args.regressors.split(","):
            for data_name, data_overrides in (
                ("generated", ["data=embedded"]),
                ("PROFET (real)", ["data=file", f"data.path={args.real}"]),
            ):
                try:
                    errors = mean_errors(data_overrides + ["anchor=g3s.xlarge", f"regressor={regressor}"])
                except ProfcastError as error:
                    print(f"benchmarks.generated_vs_real: error: {error}", file=sys.stderr)
                    return 2
                rows.append({"regressor": regressor, "data": data_name, **errors})
    table = pd.DataFrame(rows).set_index(["regressor", "data"]).round(1)
    markdown = table.to_markdown()
    print(markdown)
    print(f"\nwall time {time.perf_counter() - started:.0f} s; errors in %, mean over targets, anchor g3s.xlarge, leave-one-model-out")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
