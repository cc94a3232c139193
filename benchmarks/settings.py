"""One method's accuracy and fit CPU under several settings, side by side on every ordered pair.

    python -m benchmarks.settings --method transfer --setting "" \\
        --setting "regressor.max_iter=75 regressor.learning_rate=0.2" [--pairs all|A:B,...] [--jobs N]

Each ``--setting`` is a space-separated list of Hydra overrides of ``conf/regressor/<method>.yaml``
("" = as configured). Every setting is scored exactly as ``benchmarks.accuracy`` scores the method
(leave-one-model-out, same folds, same metrics) and timed in CPU seconds of the pair's process (one
thread each: OMP_NUM_THREADS=1), so a lighter setting's cost in accuracy and its saving in time are
read from one run. Prints per-pair and mean tables; writes them to
benchmarks/results/settings-<method>.md unless ``--markdown`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks.accuracy import (
    DEFAULT_DATA,
    RESULTS_DIR,
    benchmark_method,
    markdown_table,
    parse_pairs,
    read_benchmark_data,
)
from profcast.cli import run_cli
from profcast.errors import ProfcastError

SHOWN = ("batch_latency_mape", "device_total_mape", "wape", "cell_ape_median", "false_nonzero_rate", "cpu_seconds")


def setting_label(setting: str) -> str:
    """How a setting is named in the tables ("as configured" for no overrides)."""
    return setting.strip() or "as configured"


def benchmark_pair(profiles: pd.DataFrame, anchor: str, target: str, method: str, settings: list[str]) -> list[dict]:
    """One record per setting on one pair: the accuracy benchmark's metrics plus CPU seconds."""
    from profcast.pipeline.pairing import pair_runs
    from profcast.pipeline.splits import GroupSplit

    paired = pair_runs(profiles, anchor, target, mode="auto")
    folds = GroupSplit(["model"]).folds(paired.keys)
    records = []
    for setting in settings:
        started = time.process_time()
        record = benchmark_method(paired, folds, method, overrides=tuple(setting.split()))
        records.append(
            {
                "anchor": anchor,
                "target": target,
                "setting": setting_label(setting),
                **record,
                "cpu_seconds": time.process_time() - started,
            }
        )
    return records


def tables(records: list[dict]) -> list[str]:
    """Markdown: the mean over pairs per setting, then each pair's rows."""
    frame = pd.DataFrame(records)
    order = list(dict.fromkeys(frame["setting"]))
    means = frame.groupby("setting")[list(SHOWN)].mean().reindex(order)
    lines = [
        f"## Mean over {frame[['anchor', 'target']].drop_duplicates().shape[0]} pair(s)\n",
        markdown_table(means),
        "",
    ]
    latency = frame.pivot_table(index=["anchor", "target"], columns="setting", values="batch_latency_mape", sort=False)[
        order
    ]
    latency.index = [f"{anchor} -> {target}" for anchor, target in latency.index]
    latency.index.name = "pair"
    lines += ["## batch_latency_mape per pair\n", markdown_table(latency), ""]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="transfer", help="a regressor of conf/regressor/ (default transfer)")
    parser.add_argument(
        "--setting",
        action="append",
        required=True,
        help="space-separated Hydra overrides; repeat per setting; '' = as configured",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="profile table (default: the PROFET table beside the repo)"
    )
    parser.add_argument("--pairs", default="all", help="'all' or ANCHOR:TARGET[,ANCHOR:TARGET...]")
    parser.add_argument(
        "--jobs", type=int, default=-1, help="pairs run in parallel processes (default -1: one per core)"
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, help="output (default benchmarks/results/settings-<method>.md)"
    )
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = "1"  # before any worker starts: CPU seconds of one thread per pair
    from joblib import Parallel, delayed

    from benchmarks.accuracy import build_method

    for setting in args.setting:
        try:
            build_method(args.method, tuple(setting.split()))
        except Exception as error:  # an unknown key or value: say which setting
            raise ProfcastError(f"--setting '{setting}': {error}".splitlines()[0]) from None
    started = time.perf_counter()
    profiles, instances = read_benchmark_data(args.data)
    pairs = parse_pairs(args.pairs, instances)
    results = Parallel(n_jobs=args.jobs)(
        delayed(benchmark_pair)(profiles, a, t, args.method, args.setting) for a, t in pairs
    )
    records = [record for pair_records in results for record in pair_records]
    wall = time.perf_counter() - started
    body = tables(records)
    print("\n".join(body))
    out = args.markdown or RESULTS_DIR / f"settings-{args.method}.md"
    settings = " ".join(f"--setting '{s}'" for s in args.setting)
    header = [
        f"# {args.method} under {len(args.setting)} settings on {args.data.name}\n",
        f"`python -m benchmarks.settings --method {args.method} {settings} --pairs {args.pairs}` — "
        f"leave-one-model-out as in benchmarks.accuracy; percentages; cpu_seconds = one thread, per pair "
        f"(all folds); wall time {wall:.0f} s, load average {os.getloadavg()[0]:.1f} at the end.\n",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + body))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
