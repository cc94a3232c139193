"""Accuracy benchmark: every regressor on every ordered (anchor, target) pair, leave-one-model-out.

    python -m benchmarks.accuracy [--data PATH] [--json OUT] [--pairs all|A:B,...] [--methods ratio,transfer,...] [--jobs N]
    python -m benchmarks.accuracy --data ../shared/data/neusight --mode train   # NeuSight's label folder

For each pair the runs are paired by workload and repetition (pairing `auto`), each model is held
out in turn, and the held-out predictions are scored. Besides the regressors, a `noise_floor` row
predicts every target run by the median of the other repetitions of its workload on the target:
no method can be expected to beat it. Prints one table per pair, each method's mean over pairs and
the wall time; writes the records as JSON and the tables as markdown under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from benchmarks.whatif import transfer_family
from profcast.cli import run_cli
from profcast.config import REPO_ROOT, compose_train_config, instantiate_option
from profcast.errors import ProfcastError
from profcast.ingest.tables import known_instances, read_profile_table
from profcast.pipeline.evaluation import cross_validate, score
from profcast.pipeline.features import AllColumns
from profcast.pipeline.metrics import mape, summarise_errors, total_mape
from profcast.pipeline.pairing import PairedRuns, pair_runs
from profcast.pipeline.splits import GroupSplit
from profcast.schema import BATCH_LATENCY, WORKLOAD_KEYS, op_columns, op_part

DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "profet" / "profiles.csv.gz"
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

RECORD_FIELDS = (
    "anchor",
    "target",
    "method",
    "n_test_rows",
    "cell_ape_median",
    "column_mape_mean",
    "wape",
    "device_total_mape",
    "batch_latency_mape",
    "false_nonzero_rate",
    "fit_seconds",
    "batch_ratio_log2",
    "interval_coverage",
    "interval_width",
)
METRIC_FIELDS = tuple(field for field in RECORD_FIELDS[4:] if field != "batch_ratio_log2")
NOISE_FLOOR = "noise_floor"
ROWS_FIELD = "_rows"  # a record's held-out runs; written to <markdown stem>-rows.csv, not to the JSON records

# Methods are the regressors of conf/regressor/, with these overrides: forests of 30 trees (enough
# for stable errors, few enough for 12 pairs x 12 folds on 2 cores), one thread each (pairs already
# run in parallel processes).
METHOD_OVERRIDES = {
    "rf": ["regressor.estimator.n_estimators=30", "regressor.estimator.n_jobs=1"],
    "profet": ["regressor.n_estimators=30", "regressor.n_jobs=1"],
}
METHODS = ("lr", "knn", "dt", "rf", "ratio", "profet", "transfer")


def build_method(name: str, overrides: tuple = ()):
    """The unfitted regressor ``conf/regressor/<name>.yaml`` names, with the benchmark's overrides (then ``overrides``)."""
    cfg = compose_train_config([f"regressor={name}", *METHOD_OVERRIDES.get(name, []), *overrides])
    return instantiate_option("regressor", cfg.regressor)


VECTORLESS_METHODS = {"profet"}  # predict batch latency only


def device_columns(columns) -> list[str]:
    """The device-side op columns, whose sum is the run's device time."""
    return [c for c in columns if c.startswith("Device_")]


def benchmark_method(
    paired: PairedRuns, folds, method: str, fitted: list | None = None, overrides: tuple = (), rows: list | None = None
) -> dict:
    """Cross-validate one method on one pair and return its record; `fitted` collects the fold models;
    ``overrides`` (Hydra, e.g. ``regressor.max_iter=75``) change the method's settings; ``rows``
    collects each held-out run's measured and predicted batch latency."""
    make = partial(clone, build_method(method, overrides))
    if fitted is not None:
        make = partial(_collected, make, fitted)
    held_out = cross_validate(paired, folds, make, AllColumns().select)
    metrics, _ = score(held_out, op_part(paired.target_profile))
    if rows is not None and BATCH_LATENCY in held_out.truth:
        rows += held_out_rows(paired, held_out, method)
    record = {
        "cell_ape_median": metrics["cell_ape_median"],
        "column_mape_mean": metrics["mape_mean"],
        "wape": metrics["wape"],
        "device_total_mape": _device_total_mape(held_out.truth, held_out.predicted),
        "batch_latency_mape": metrics.get("batch_latency_mape"),
        "false_nonzero_rate": metrics["false_nonzero_rate"],
    }
    if method in VECTORLESS_METHODS:
        record.update(
            cell_ape_median=None, column_mape_mean=None, wape=None, device_total_mape=None, false_nonzero_rate=None
        )
    return {"n_test_rows": len(held_out.truth), **record, "fit_seconds": held_out.fit_seconds}


def held_out_rows(paired: PairedRuns, held_out, method: str) -> list[dict]:
    """One dict per held-out run: pair, method, workload keys, measured and predicted batch latency (s)."""
    keys = paired.keys.loc[held_out.truth.index, WORKLOAD_KEYS]
    return [
        {
            "anchor": paired.anchor,
            "target": paired.target,
            "method": method,
            **key,
            "measured_s": float(truth),
            "predicted_s": float(predicted),
        }
        for key, truth, predicted in zip(
            keys.to_dict("records"), held_out.truth[BATCH_LATENCY], held_out.predicted[BATCH_LATENCY]
        )
    ]


def _collected(make, fitted: list):
    model = make()
    fitted.append(model)  # cross_validate fits it in place: fitted[f] is fold f's model
    return model


def noise_floor(paired: PairedRuns) -> dict:
    """Errors of predicting each target run by the median of its workload's other repetitions."""
    runs = pd.concat([paired.keys[WORKLOAD_KEYS + ["target_exp"]], paired.target_profile], axis=1)
    runs = runs.drop_duplicates(WORKLOAD_KEYS + ["target_exp"])
    truth = runs[paired.target_profile.columns].reset_index(drop=True)
    groups = runs.groupby(WORKLOAD_KEYS, sort=False).indices
    predicted = pd.DataFrame(np.nan, index=truth.index, columns=truth.columns)
    values = truth.to_numpy(float)
    for rows in groups.values():
        if len(rows) < 2:
            continue  # a single repetition says nothing about run-to-run noise
        for row in rows:
            predicted.iloc[row] = np.median(values[rows[rows != row]], axis=0)
    known = predicted.notna().all(axis=1)
    truth, predicted = truth[known], predicted[known]
    if truth.empty:
        return {"n_test_rows": 0, **{field: None for field in METRIC_FIELDS}}
    metrics, _ = summarise_errors(op_part(truth), op_part(predicted), op_part(paired.target_profile))
    return {
        "n_test_rows": len(truth),
        "cell_ape_median": metrics["cell_ape_median"],
        "column_mape_mean": metrics["mape_mean"],
        "wape": metrics["wape"],
        "device_total_mape": _device_total_mape(truth, predicted),
        "batch_latency_mape": mape(truth[BATCH_LATENCY], predicted[BATCH_LATENCY]) if BATCH_LATENCY in truth else None,
        "false_nonzero_rate": metrics["false_nonzero_rate"],
        "fit_seconds": 0.0,
    }


def _device_total_mape(truth: pd.DataFrame, predicted: pd.DataFrame) -> float | None:
    columns = device_columns(op_part(truth).columns)
    if not columns:
        return None
    return total_mape(truth[columns].sum(axis=1), predicted[columns].sum(axis=1, min_count=1).fillna(0))


def read_benchmark_data(path: Path, mode: str = "both") -> tuple[pd.DataFrame, list[str]]:
    """The profile table at `path` (a table, a NeuSight folder or a folder of profiler exports) and its
    instances; it must exist and hold at least two instances. ``mode`` train|inf keeps NeuSight's
    training or inference rows (optimizer ``train``/``inf``)."""
    from profcast.ingest.neusight_data import select_mode

    if not path.exists():
        raise ProfcastError(f"--data {path.resolve()}: no such file; pass --data PATH to a profile table")
    if path.is_dir():
        from profcast.datasets.sources import FileData

        profiles = FileData(str(path)).load()
    else:
        profiles = read_profile_table(path)
    if mode != "both":
        profiles = select_mode(profiles, mode, source=str(path))
    instances = known_instances(profiles)
    if len(instances) < 2:
        raise ProfcastError(f"{path}: holds one instance ({instances[0]}); the benchmark needs at least two")
    return profiles, instances


def in_vocabulary(profiles: pd.DataFrame, vocabulary: str) -> pd.DataFrame:
    """The table with op columns as profiled (native) or summed per canonical category (profcast.vocabulary)."""
    from profcast.vocabulary import Vocabulary, unmapped_note

    mapped, unmapped = Vocabulary(canonical=vocabulary == "canonical").apply(profiles)
    if unmapped is not None:
        print(
            f"vocabulary canonical: {len(op_columns(profiles.columns))} op columns -> {len(op_columns(mapped.columns))}; "
            f"{unmapped_note(unmapped) or 'every op name mapped'}"
        )
    return mapped


def parse_pairs(
    text: str, instances: list[str], profiles: pd.DataFrame | None = None, min_shared: int = 0
) -> list[tuple[str, str]]:
    """'all' -> every ordered pair of distinct instances sharing at least ``min_shared`` workloads
    from at least two models (leave-one-model-out needs two); else 'A:B,C:D'."""
    if text == "all":
        pairs = [(anchor, target) for anchor in instances for target in instances if anchor != target]
        if profiles is None or min_shared <= 0:
            return pairs
        return [pair for pair in pairs if _enough_shared(profiles, *pair, min_shared)]
    pairs = []
    for item in text.split(","):
        anchor, sep, target = item.strip().partition(":")
        if not sep or not anchor or not target:
            raise ProfcastError(f"--pairs: '{item}' is not ANCHOR:TARGET; accepted: all or A:B,C:D")
        for name in (anchor, target):
            if name not in instances:
                raise ProfcastError(
                    f"--pairs: unknown instance '{name}'; instances in the data: {', '.join(instances)}"
                )
        pairs.append((anchor, target))
    return pairs


def _enough_shared(profiles: pd.DataFrame, anchor: str, target: str, min_shared: int) -> bool:
    workloads = [
        set(map(tuple, profiles.loc[profiles["instance_name"] == name, WORKLOAD_KEYS].to_numpy().tolist()))
        for name in (anchor, target)
    ]
    shared = workloads[0] & workloads[1]
    return len(shared) >= min_shared and len({workload[1] for workload in shared}) >= 2


def chosen_instances(text: str | None, instances: list[str]) -> list[str]:
    """--instances A,B,C checked against the data (None: all)."""
    if not text:
        return instances
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in instances]
    if unknown:
        raise ProfcastError(
            f"--instances: unknown instance(s) {', '.join(unknown)}; instances in the data: {', '.join(instances)}"
        )
    return chosen


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data (the profile table) and --pairs (which ordered instance pairs), as every pair benchmark takes them."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="profile table (CSV, CSV.gz or Parquet)")
    parser.add_argument("--pairs", default="all", help="'all' or ANCHOR:TARGET[,ANCHOR:TARGET...]")
    parser.add_argument(
        "--mode",
        choices=("train", "inf", "both"),
        default="both",
        help="NeuSight data: training rows, inference rows or both (never paired with each other)",
    )
    parser.add_argument(
        "--instances",
        default=None,
        help="with --pairs all: only pairs among these comma-separated instances (keeps a run short)",
    )
    parser.add_argument(
        "--min-shared",
        type=int,
        default=4,
        help="with --pairs all: only pairs sharing at least this many workloads of two or more models",
    )


def parse_methods(text: str) -> list[str]:
    """Comma-separated method names; the noise floor is always added."""
    methods = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in methods if name not in METHODS and name != NOISE_FLOOR]
    if unknown or not methods:
        raise ProfcastError(
            f"--methods: unknown method(s) {', '.join(unknown) or '(none)'}; accepted: {', '.join(METHODS)}"
        )
    return [name for name in methods if name != NOISE_FLOOR]


def benchmark_pair(
    profiles: pd.DataFrame, anchor: str, target: str, methods: list[str]
) -> tuple[list[dict], list[str]]:
    """Every method on one pair, plus the noise floor: its records and the lines to print."""
    paired = pair_runs(profiles, anchor, target, mode="auto")
    folds = GroupSplit(["model"]).folds(paired.keys)
    records = [{"anchor": anchor, "target": target, "method": NOISE_FLOOR, **noise_floor(paired)}]
    lines = []
    for method in methods:
        if method in VECTORLESS_METHODS and not (
            BATCH_LATENCY in paired.anchor_profile and BATCH_LATENCY in paired.target_profile
        ):
            lines.append(f"{anchor} -> {target}: skipping {method} (the data has no batch_latency)")
            continue
        fitted = [] if method == "transfer" else None
        rows = []  # per-run errors, for tables against published per-workload errors (benchmarks/neusight_comparison.py)
        records.append(
            {
                "anchor": anchor,
                "target": target,
                "method": method,
                **benchmark_method(paired, folds, method, fitted, rows=rows),
                ROWS_FIELD: rows,
            }
        )
        if fitted:
            # Intervals, a second profile, size what-ifs and PROFET's scaler reuse transfer's fold models.
            interval, *extra = transfer_family(paired, folds, fitted) or [{}]
            records[-1].update(interval)
            records += [{"anchor": anchor, "target": target, **record} for record in extra]
    lines.append(f"\n{anchor} -> {target} ({paired.mode} pairing, {len(folds)} held-out models)")
    lines.append(markdown_table(labelled(pd.DataFrame(records))[list(METRIC_FIELDS)]))
    return records, lines


def run_benchmark(
    profiles: pd.DataFrame, pairs: list[tuple[str, str]], methods: list[str], log=print, jobs: int = 1
) -> list[dict]:
    """Every method on every pair, plus the noise floor; one record per (pair, method).

    `jobs` > 1 (or -1: one per core) runs pairs in parallel processes; records keep the pair order.
    """
    records = []
    results = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(benchmark_pair)(profiles, anchor, target, methods) for anchor, target in pairs
    )
    for pair_records, lines in results:
        for line in lines:
            log(line)
        records += pair_records
    return records


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """Records indexed by method, a what-if's label naming its batch move (whatif b'/b=2^±2)."""
    labels = table["method"].astype(str)
    if "batch_ratio_log2" in table:
        moved = table["batch_ratio_log2"].notna()
        labels[moved] = labels[moved] + " b'/b=2^±" + table.loc[moved, "batch_ratio_log2"].astype(int).astype(str)
    columns = [field for field in RECORD_FIELDS if field != "method"]
    return table.assign(method=labels.to_numpy()).set_index("method").reindex(columns=columns)


def mean_over_pairs(records: list[dict]) -> pd.DataFrame:
    """Each method's metrics averaged over pairs (rows in first-seen order)."""
    table = labelled(pd.DataFrame(records)).reset_index()
    order = list(dict.fromkeys(table["method"]))
    metrics = table[["method", *METRIC_FIELDS]].set_index("method").apply(pd.to_numeric, errors="coerce")
    means = metrics.groupby(level=0).mean().reindex(order)
    means.insert(0, "pairs", table.groupby("method").size().reindex(order))
    return means


def markdown_table(frame: pd.DataFrame) -> str:
    """A markdown table with 2 decimals; missing values shown as '-'."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in frame.astype(object).iterrows():  # object keeps integer counts integers
        cells = ["-" if pd.isna(v) else (f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row]
        lines.append("| " + " | ".join([str(name)] + cells) + " |")
    return "\n".join(lines)


def data_stem(path: Path) -> str:
    """profiles.csv.gz -> profiles."""
    name = path.name
    for suffix in (".csv.gz", ".csv", ".parquet"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="write the records here (default: beside the markdown)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated from {', '.join(METHODS)}")
    parser.add_argument(
        "--jobs", type=int, default=-1, help="pairs run in parallel processes (default -1: one per core)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="markdown table path (default: benchmarks/results/accuracy-<data stem>.md)",
    )
    parser.add_argument(
        "--vocabulary",
        choices=("native", "canonical"),
        default="native",
        help="op columns as profiled (native) or mapped to the canonical categories, as vocabulary=canonical trains",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profiles, instances = read_benchmark_data(args.data, args.mode)
    profiles = in_vocabulary(profiles, args.vocabulary)
    pairs = parse_pairs(args.pairs, chosen_instances(args.instances, instances), profiles, args.min_shared)
    if not pairs:
        raise ProfcastError(f"{args.data}: no instance pair shares {args.min_shared} workloads of two or more models")
    methods = parse_methods(args.methods)
    records = run_benchmark(profiles, pairs, methods, jobs=args.jobs)
    wall_seconds = time.perf_counter() - started
    means = mean_over_pairs(records)
    print(f"\nmean over {len(pairs)} pair(s)")
    print(markdown_table(means))
    print(f"\nwall time {wall_seconds:.0f} s")

    stem = data_stem(args.data) + ("" if args.mode == "both" else f"-{args.mode}")
    suffix = "" if args.vocabulary == "native" else f"-{args.vocabulary}"
    markdown_path = args.markdown or RESULTS_DIR / f"accuracy-{stem}{suffix}.md"
    json_path = args.json or markdown_path.with_suffix(".json")
    command = "python -m benchmarks.accuracy " + " ".join(argv if argv is not None else sys.argv[1:])
    per_pair = labelled(pd.DataFrame(records))
    sections = [
        f"# Accuracy on {args.data.name}\n",
        f"`{command.strip()}` — leave-one-model-out, wall time {wall_seconds:.0f} s. Percentages.\n",
        f"## Mean over {len(pairs)} pair(s)\n",
        markdown_table(means),
        "",
    ]
    for (anchor, target), rows in per_pair.groupby(["anchor", "target"], sort=False):
        sections += [f"## {anchor} -> {target}\n", markdown_table(rows[list(METRIC_FIELDS)]), ""]
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text("\n".join(sections))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps([_jsonable(record) for record in records], indent=1))
    rows_path = markdown_path.with_name(markdown_path.stem + "-rows.csv")
    pd.DataFrame([row for record in records for row in record.get(ROWS_FIELD, [])]).to_csv(rows_path, index=False)
    print(f"wrote {markdown_path}, {json_path} and {rows_path}")
    return 0


def _jsonable(record: dict) -> dict:
    """Fields in the documented order; NaN and missing values become null."""
    out = {}
    for field in RECORD_FIELDS:
        value = record.get(field)
        if isinstance(value, (float, np.floating)):
            value = None if not np.isfinite(value) else round(float(value), 4)
        elif isinstance(value, np.integer):
            value = int(value)
        out[field] = value
    return out


if __name__ == "__main__":
    run_cli(main)
