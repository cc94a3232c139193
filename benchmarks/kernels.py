"""Kernel forecasts for GPUs the model never saw: leave-one-GPU-out over the kernel atlas.

    python -m benchmarks.kernels --data ../shared/data/neusight --data ../shared/data/aiconfigurator \
        [--json FILE] [--out benchmarks/results/kernels.md] [--rows-per-group N]

For each held-out GPU the kernel model (``regressors/kernel_model``) is fitted on every atlas row of the
*other* GPUs (both sources; at most ``--rows-per-group`` rows per GPU, op kind, precision and split,
drawn at random, so a fit stays within a minute on two busy cores; only the call-relative features
unless ``--gpu-features``, which measured worse; matrix and vector calls as two sub-models unless
``--joint``) and forecasts the held-out GPU's
rows from its figures alone. Scored rows: (a) NeuSight's paired test set (``split`` test) by operator
class, beside NeuSight's published out-of-distribution errors; (b) AIConfigurator GEMMs, bf16 and fp8;
(c) AIConfigurator prefill attention, bf16. Methods: ``ours``; ``roofline`` (max(FLOPs / peak,
bytes / bandwidth) from the same figures); ``nearest_gpu`` (the same shape's measured time on the
other GPU nearest in log peak and log bandwidth that measured it, times the two GPUs' roofline ratio).
A record: ``source, op_kind, precision, held_out_gpu, method, n, mape, median_ape``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.accuracy import RESULTS_DIR
from benchmarks.kernel_tables import (
    NEUSIGHT_KERNELS,
    aiconfigurator_figures,
    aiconfigurator_kernels,
    neusight_figures,
    neusight_kernels,
)
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.regressors.kernel_model import MEASURED_SETTINGS, KernelModel, roofline_ms, with_figures

SHAPE_KEYS = ["source", "op_kind", "op", "precision", "phase", "batch", "m", "n", "k", "kv_heads", "split"]
GROUP_KEYS = ["gpu", "op_kind", "precision", "split"]
NEUSIGHT_CLASSES = {"bmm": "BMM", "linear": "FC", "elementwise": "EW", "softmax": "Softmax", "layernorm": "LN"}
# the GPUs NeuSight scored as out of distribution: on its test set, never in its training sweeps
NEUSIGHT_UNSEEN = ("h100-80gb-hbm3", "l4", "a100-80gb-pcie")
PEROP = Path("scripts") / "asplos" / "summary" / "perop.csv"


def load_atlas(folders) -> tuple[pd.DataFrame, dict]:
    """Every kernel row and GPU figures of the given folders (NeuSight or AIConfigurator layouts)."""
    tables, figures = [], {}
    for folder in map(Path, folders):
        if (folder / NEUSIGHT_KERNELS).is_dir():
            tables.append(neusight_kernels(folder))
            found = neusight_figures(folder)
        elif (folder / "systems" / "data").is_dir():
            tables.append(aiconfigurator_kernels(folder))
            found = aiconfigurator_figures(folder)
        else:
            raise ProfcastError(
                f"--data {folder}: neither a NeuSight checkout ({NEUSIGHT_KERNELS}) nor AIConfigurator's (systems/data)"
            )
        figures = {gpu: merged_figures(figures.get(gpu), given) for gpu, given in found.items()} | {
            gpu: given for gpu, given in figures.items() if gpu not in found
        }
    return pd.concat(tables, ignore_index=True), figures


def merged_figures(known, given):
    """One GPU's figures from two sources (H100 is in both): the known ones kept, the new ones' gaps filled."""
    if known is None:
        return given
    fields = {key: value for key, value in given.as_dict().items() if not _missing(value)}
    fields |= {key: value for key, value in known.as_dict().items() if not _missing(value)}
    fields["peaks"] = given.peaks | known.peaks
    merged = type(known)(**fields)
    object.__setattr__(merged, "power_w", getattr(known, "power_w", getattr(given, "power_w", np.nan)))
    return merged


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def published_ood(folders) -> dict[str, float]:
    """NeuSight's published out-of-distribution per-operator errors (%), by our op kind; {} without the file."""
    for folder in map(Path, folders):
        path = folder / PEROP
        if path.is_file():
            # two header rows: "In Distribution" over the first five columns, "Out of Distribution" over the next five
            lines = [line.split(",") for line in path.read_text().splitlines()]
            start = lines[0].index("Out of Distribution")
            row = next(line for line in lines if line[0] == "NeuSight")
            ood = {lines[1][i]: float(row[i]) for i in range(start, start + len(NEUSIGHT_CLASSES))}
            return {kind: ood[column] for kind, column in NEUSIGHT_CLASSES.items()}
    return {}


def scored_rows(table: pd.DataFrame, gpu: str) -> pd.DataFrame:
    """The held-out GPU's rows that are scored: NeuSight's test split, every AIConfigurator row."""
    own = table[table["gpu"] == gpu]
    return own[(own["source"] == "aiconfigurator") | (own["split"] == "test")]


def nearest_gpu_ms(table: pd.DataFrame, rows: pd.DataFrame, gpu: str) -> np.ndarray:
    """Each row's time on the nearest other GPU that measured its shape, times the roofline ratio (NaN if none)."""
    others = table[table["gpu"] != gpu]
    target = rows[SHAPE_KEYS].assign(row=np.arange(len(rows)), target_roofline=roofline_ms(rows))
    target["target_peak"] = np.log10(rows["peak_tflops"].to_numpy())
    target["target_bandwidth"] = np.log10(rows["bandwidth_gbs"].to_numpy())
    candidates = others[[*SHAPE_KEYS, "gpu", "latency_ms"]].assign(
        roofline=roofline_ms(others),
        peak=np.log10(others["peak_tflops"].to_numpy()),
        bandwidth=np.log10(others["bandwidth_gbs"].to_numpy()),
    )
    joined = target.merge(candidates, on=SHAPE_KEYS, how="inner")
    joined["distance"] = np.hypot(
        joined["peak"] - joined["target_peak"], joined["bandwidth"] - joined["target_bandwidth"]
    )
    best = joined.sort_values(["row", "distance"]).drop_duplicates("row")
    forecast = np.full(len(rows), np.nan)
    forecast[best["row"].to_numpy()] = (best["latency_ms"] * best["target_roofline"] / best["roofline"]).to_numpy()
    return forecast


def error_records(rows: pd.DataFrame, forecasts: dict, gpu: str) -> list[dict]:
    """One record per (source, op_kind, precision, method): n, mean and median absolute % error."""
    records = []
    measured = rows["latency_ms"].to_numpy()
    for method, forecast in forecasts.items():
        ape = 100 * np.abs(forecast / measured - 1)
        frame = rows[["source", "op_kind", "precision"]].assign(ape=ape).dropna(subset=["ape"])
        for (source, kind, precision), group in frame.groupby(["source", "op_kind", "precision"]):
            records.append(
                {
                    "source": source,
                    "op_kind": kind,
                    "precision": precision,
                    "held_out_gpu": gpu,
                    "method": method,
                    "n": len(group),
                    "mape": round(float(group["ape"].mean()), 2),
                    "median_ape": round(float(group["ape"].median()), 2),
                }
            )
    return records


def subsample(table: pd.DataFrame, rows_per_group: int, seed: int = 0) -> pd.DataFrame:
    """At most ``rows_per_group`` random rows of each GPU, op kind, precision and split."""
    return table.sample(frac=1.0, random_state=seed).groupby(GROUP_KEYS).head(rows_per_group)


def leave_one_gpu_out(
    table: pd.DataFrame, figures: dict, rows_per_group: int, gpus=None, json_path=None, **params
) -> pd.DataFrame:
    """Records of every held-out GPU (all scored GPUs, or ``gpus``) and method; ``json_path`` rewritten after each."""
    table = with_figures(table, figures)
    held_out = sorted(
        set(scored_rows(table, g)["gpu"].iloc[0] for g in set(table["gpu"]) if len(scored_rows(table, g)))
    )
    records = []
    for gpu in gpus or held_out:
        rows = scored_rows(table, gpu)
        training = subsample(table[table["gpu"] != gpu], rows_per_group)
        with threadpool_limits(limits=1):  # OpenMP threads spin-wait on a shared, oversubscribed machine
            model = KernelModel(**params).fit(training, training["latency_ms"])
        forecasts = {
            "ours": model.predict(rows),
            "roofline": roofline_ms(rows),
            "nearest_gpu": nearest_gpu_ms(table, rows, gpu),
        }
        records += error_records(rows, forecasts, gpu)
        if json_path:  # a long run stopped early keeps the GPUs it finished
            Path(json_path).write_text(json.dumps(records, indent=1))
        print(f"  {gpu}: fitted on {len(training)} rows of {len(model.gpus_)} GPUs, scored {len(rows)}", flush=True)
    return pd.DataFrame(records)


def summary_lines(records: pd.DataFrame, published: dict) -> list[str]:
    """Markdown: per-class means beside NeuSight's published figures, then GEMM and attention per GPU."""
    lines = ["## (a) NeuSight's paired test set, FP32, mean absolute % error by class", ""]
    lines += [
        "| class | ours, H100/L4/A100-80GB | ours, all 8 GPUs | roofline | nearest GPU | NeuSight published OOD |"
    ]
    lines += ["|---|---|---|---|---|---|"]
    neusight = records[records["source"] == "neusight"]
    for kind in NEUSIGHT_CLASSES:
        rows = neusight[neusight["op_kind"] == kind]
        ours = rows[rows["method"] == "ours"]
        unseen = ours[ours["held_out_gpu"].isin(NEUSIGHT_UNSEEN)]["mape"].mean()
        means = {m: rows[rows["method"] == m]["mape"].mean() for m in ("ours", "roofline", "nearest_gpu")}
        lines.append(
            f"| {kind} | {unseen:.1f} | {means['ours']:.1f} | {means['roofline']:.1f} | {means['nearest_gpu']:.1f} "
            f"| {published.get(kind, float('nan')):.1f} |"
        )
    ours = neusight[neusight["method"] == "ours"].pivot_table(index="held_out_gpu", columns="op_kind", values="mape")
    lines += ["", "Ours per held-out GPU (NeuSight's test set; H100 was measured on bmm and linear only):", ""]
    lines += ["| held-out GPU | " + " | ".join(NEUSIGHT_CLASSES) + " |", "|---" * (len(NEUSIGHT_CLASSES) + 1) + "|"]
    for gpu, values in ours.iterrows():
        lines.append(f"| {gpu} | " + " | ".join(f"{values.get(kind, np.nan):.1f}" for kind in NEUSIGHT_CLASSES) + " |")
    for kind, title in (("gemm", "(b) AIConfigurator GEMMs"), ("attention", "(c) AIConfigurator prefill attention")):
        rows = records[records["op_kind"] == kind]
        for precision in sorted(set(rows["precision"])):
            part = rows[rows["precision"] == precision]
            wide = part.pivot_table(index="held_out_gpu", columns="method", values="mape")
            counts = part[part["method"] == "ours"].set_index("held_out_gpu")["n"]
            lines += ["", f"## {title}, {precision}, mean absolute % error per held-out GPU", ""]
            lines += ["| held-out GPU | rows | ours | roofline | nearest GPU |", "|---|---|---|---|---|"]
            for gpu, values in wide.iterrows():
                lines.append(
                    f"| {gpu} | {counts.get(gpu, 0)} | {values.get('ours', np.nan):.1f} | "
                    f"{values.get('roofline', np.nan):.1f} | {values.get('nearest_gpu', np.nan):.1f} |"
                )
            lines.append(
                f"| **mean over GPUs** | | **{wide['ours'].mean():.1f}** (max {wide['ours'].max():.1f}) | "
                f"{wide['roofline'].mean():.1f} | {wide['nearest_gpu'].mean():.1f} |"
            )
    return lines


def main(argv=None) -> int:
    """Run the leave-one-GPU-out kernel benchmark and print (and optionally write) its tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", type=Path, required=True, help="a NeuSight or AIConfigurator folder")
    parser.add_argument(
        "--records", action="append", type=Path, default=None, help="render these --json files' records (no fit)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every record here")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "kernels.md", help="write the markdown tables here")
    parser.add_argument("--rows-per-group", type=int, default=4000, help="fit rows per GPU, op kind, precision, split")
    parser.add_argument(
        "--gpu-features", action="store_true", help="also fit on the GPU's own figures (peak, bandwidth, SMs, power)"
    )
    parser.add_argument(
        "--max-iter", type=int, default=MEASURED_SETTINGS["max_iter"], help="boosting iterations of each fit"
    )
    parser.add_argument(
        "--joint", action="store_true", help="one model for matrix and vector calls (default: one sub-model each)"
    )
    parser.add_argument("--gpu", action="append", default=None, help="hold out only these GPUs (default: all)")
    args = parser.parse_args(argv)

    def run(_argv=None) -> int:
        if args.records:  # partial runs (one --gpu list each, in parallel) joined into one table
            records = pd.DataFrame([r for path in args.records for r in json.loads(path.read_text())])
        else:
            table, figures = load_atlas(args.data)
            print(f"atlas: {len(table)} rows, {table['gpu'].nunique()} GPUs", flush=True)
            records = leave_one_gpu_out(
                table,
                figures,
                args.rows_per_group,
                gpus=args.gpu,
                json_path=args.json,
                max_iter=args.max_iter,
                learning_rate=MEASURED_SETTINGS["learning_rate"],
                gpu_features=args.gpu_features,
                per_family=not args.joint,
            )
        lines = summary_lines(records, published_ood(args.data))
        print("\n".join(lines))
        if args.json:
            args.json.write_text(json.dumps(records.to_dict("records"), indent=1))
        if not args.gpu and args.out:  # a partial run does not overwrite the committed tables
            args.out.write_text("\n".join(lines) + "\n")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
