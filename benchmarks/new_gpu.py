"""Forecasts for GPUs nobody here measured: the per-call model, leave-one-GPU-out on NeuSight's data.

    python -m benchmarks.new_gpu [--data ../shared/data/neusight] [--json FILE] [--out benchmarks/results/new-gpu.md]

Protocols (``protocol`` of each record):

- ``logo``: the held-out GPU's label files are never fitted on, only its figures are read; every other
  GPU measured on the same workload serves as anchor in turn.
- ``logo+lomo``: the held-out GPU and the workload's model family both left out of the fit.
- ``lomo``: a *measured* target: the fit sees every GPU but not the workload's model family; beside
  ``transfer``'s leave-one-model-out rows (``benchmarks/results/accuracy-neusight-rows.csv``) on the same pairs.

Methods: ``per_call`` (figures only, anchor_weight 0; plus the step-level gap per call, the median over
the fitted GPUs' runs, ``regressors/step_gap``), ``per_call_anchor`` (anchor residual carried over at
weight 0.5), ``roofline`` (sum of the calls' roofline times from the same figures) and, under
``logo+lomo`` only, ``median_ratio`` (``benchmarks/pair_ratio``): issue 30's baseline, the anchor's
measured step times the median over the *other* families' workloads of the same mode of target step /
anchor step for that GPU pair (it reads the target's measurements of the other families, which the
per-call forecast never does). A record
has ``method, protocol, anchor, target, model, workload, mode, batchsize, measured_us, predicted_us,
e2e_mape`` and, for ``per_call`` under ``logo``, the 80% interval (``lower_us``, ``upper_us``): its factors
are the 10th and 90th percentiles of log(measured / forecast) over the runs of the *other* GPUs (each GPU
weighing the same, whatever its number of runs), each forecast by a model fitted without it *and* without
the target (nested: the target's measurements are read by nothing but the scoring), widened in log space
by half the decades the target's figures lie outside the fitted GPUs' (``figures_outside_range``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.accuracy import RESULTS_DIR
from benchmarks.neusight_comparison import DEFAULT_DATA, SUMMARY, published_errors
from benchmarks.pair_ratio import family_comparison, median_ratio_records, workload_name
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.ingest.device_figures import neusight_device_figures
from profcast.ingest.neusight_calls import read_call_folder
from profcast.regressors.call_costs import add_call_costs
from profcast.regressors.per_call import (
    RUN_KEYS,
    PerCallModel,
    figures_outside_range,
    interval_factors,
    leave_one_gpu_out_log_errors,
    roofline_step_us,
)

BAR_GPUS = ("h100-80gb-hbm3", "a100-80gb-pcie", "l4")
ANCHOR_WEIGHTS = {"per_call": 0.0, "per_call_anchor": 0.5}
TRANSFER_ROWS = RESULTS_DIR / "accuracy-neusight-rows.csv"


def forecast_records(model, calls, steps, devices, target, protocol, runs=None) -> list[dict]:
    """Every (anchor, run) forecast of ``target``'s measured runs by a fitted model, as records."""
    measured = steps[steps["gpu"] == target]
    if runs is not None:
        measured = measured[measured["model"].isin(runs)]
    records = []
    for anchor in sorted(set(steps["gpu"]) - {target}):
        anchor_calls = calls[calls["gpu"] == anchor].merge(measured[RUN_KEYS], on=RUN_KEYS)
        if anchor_calls.empty:
            continue
        forecasts = {}
        for method, weight in ANCHOR_WEIGHTS.items():
            model.set_params(anchor_weight=weight)
            forecasts[method] = model.predict_step_us(anchor_calls, devices[anchor], devices[target])
        forecasts["roofline"] = roofline_step_us(anchor_calls, devices[target])
        for method, frame in forecasts.items():
            for row in frame.merge(measured, on=RUN_KEYS).to_dict("records"):
                records.append(
                    {
                        "method": method,
                        "protocol": protocol,
                        "anchor": anchor,
                        "target": target,
                        "model": row["model"],
                        "workload": workload_name(row),
                        "mode": row["mode"],
                        "batchsize": int(row["batchsize"]),
                        "measured_us": float(row["e2e_us"]),
                        "predicted_us": float(row["predicted_us"]),
                        "e2e_mape": abs(row["predicted_us"] / row["e2e_us"] - 1) * 100,
                    }
                )
    return records


def measured_sum_records(calls, steps) -> list[dict]:
    """The ceiling of summing calls: each run's *measured* calls summed against its step time (no forecast)."""
    frame = (
        calls.assign(total_us=calls["time_us"] * calls["repeat"])
        .groupby(["gpu", *RUN_KEYS], as_index=False)["total_us"]
        .sum()
    )
    records = []
    for row in frame.merge(steps, on=["gpu", *RUN_KEYS]).to_dict("records"):
        records.append(
            {
                "method": "measured_calls_sum",
                "protocol": "logo",
                "anchor": "-",
                "target": row["gpu"],
                "model": row["model"],
                "workload": workload_name(row),
                "mode": row["mode"],
                "batchsize": int(row["batchsize"]),
                "measured_us": float(row["e2e_us"]),
                "predicted_us": float(row["total_us"]),
                "e2e_mape": abs(row["total_us"] / row["e2e_us"] - 1) * 100,
            }  # fmt: skip
        )
    return records


def run_benchmark(folder: Path) -> pd.DataFrame:
    """All protocols' records on one NeuSight folder."""
    calls, steps = read_call_folder(folder)
    calls = add_call_costs(calls)
    devices = neusight_device_figures(folder)
    records, factors = measured_sum_records(calls, steps), {}
    with threadpool_limits(limits=1):  # the boosting's OpenMP threads oversubscribe a shared 2-core machine
        for target in sorted(steps["gpu"].unique()):
            model = PerCallModel().fit(calls[calls["gpu"] != target], devices, steps[steps["gpu"] != target])
            records += forecast_records(model, calls, steps, devices, target, "logo")
            factors[target] = nested_interval_factors(calls, steps, devices, target)
        trained_targets = sorted(steps.loc[steps["mode"] == "train", "gpu"].unique())
        for family in sorted(steps["model"].unique()):
            keep, kept_steps = calls["model"] != family, steps[steps["model"] != family]
            measured_model = PerCallModel().fit(calls[keep], devices, kept_steps)
            for target in trained_targets:
                records += forecast_records(measured_model, calls, steps, devices, target, "lomo", runs=[family])
                both_steps = kept_steps[kept_steps["gpu"] != target]
                both = PerCallModel().fit(calls[keep & (calls["gpu"] != target)], devices, both_steps)
                records += forecast_records(both, calls, steps, devices, target, "logo+lomo", runs=[family])
                records += median_ratio_records(steps, target, family)
    return add_intervals(pd.DataFrame(records), factors)


def nested_interval_factors(calls, steps, devices, target) -> tuple[float, float]:
    """80% interval factors for ``target``, from the leave-one-GPU-out errors of the *other* GPUs, fitted without it."""
    others = steps["gpu"] != target
    fitted = calls.loc[calls["gpu"] != target, "gpu"].unique()
    errors = leave_one_gpu_out_log_errors(calls[calls["gpu"] != target], steps[others], devices)
    outside = figures_outside_range(devices[target], [devices[gpu] for gpu in fitted])
    return interval_factors(errors, outside_decades=outside)


def add_intervals(records: pd.DataFrame, factors: dict) -> pd.DataFrame:
    """Each ``per_call`` logo forecast's 80% interval from its target's (lower, upper) factors."""
    records = records.copy()
    records["lower_us"], records["upper_us"] = np.nan, np.nan
    chosen = (records["method"] == "per_call") & (records["protocol"] == "logo")
    for target, (low, high) in factors.items():
        rows = chosen & (records["target"] == target)
        records.loc[rows, "lower_us"] = records.loc[rows, "predicted_us"] * low
        records.loc[rows, "upper_us"] = records.loc[rows, "predicted_us"] * high
    return records


def comparison(records: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Per target GPU and training workload under logo: ours (mean over anchors), roofline, NeuSight's published."""
    logo = records[(records["protocol"] == "logo") & (records["mode"] == "train")]
    table = logo.pivot_table(
        index=["target", "model", "batchsize", "workload"], columns="method", values="e2e_mape", aggfunc="mean"
    ).reset_index()
    published = published[published["mode"] == "train"].drop(columns="mode")
    return table.merge(published, on=["target", "model", "batchsize"], how="left")


def render(records: pd.DataFrame, table: pd.DataFrame, transfer: pd.DataFrame | None) -> str:
    """The markdown page."""
    lines = [
        "# New GPUs: the per-call model, leave-one-GPU-out on NeuSight's data\n",
        "`python -m benchmarks.new_gpu` (see its docstring). End-to-end step time, absolute % error, mean over the",
        "anchor GPUs measured on the same workload. The held-out GPU's measurements are never fitted on; only its",
        "figures (`device_configs/<GPU>.json`) are read. NeuSight's number is the paper's (its own protocol).",
        "`measured calls summed` is no forecast: the target's own measured calls summed, against its step time; it",
        "is what a perfect per-call forecast would score without a step-level correction.\n",
        "## Training workloads, per target GPU\n",
        "| target | workload | per_call % | per_call_anchor % | roofline % | measured calls summed % | NeuSight published % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        published = "-" if pd.isna(row.published_error) else f"{row.published_error:.1f}"
        lines.append(
            f"| {row.target} | {row.workload} | {row.per_call:.1f} | {row.per_call_anchor:.1f} | {row.roofline:.1f} | {row.measured_calls_sum:.1f} | {published} |"
        )
    lines += [
        "\n## Means on the three GPUs of the bar (workloads the data holds)\n",
        "| target | workloads | per_call % | per_call_anchor % | roofline % | measured calls summed % | NeuSight published % | per_call lower |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for gpu in BAR_GPUS:
        rows = table[table["target"] == gpu]
        if rows.empty:
            continue
        means = rows[["per_call", "per_call_anchor", "roofline", "measured_calls_sum", "published_error"]].mean()
        lines.append(
            f"| {gpu} | {len(rows)} | {means.per_call:.1f} | {means.per_call_anchor:.1f} | {means.roofline:.1f} | "
            f"{means.measured_calls_sum:.1f} | {means.published_error:.1f} | {'yes' if means.per_call < means.published_error else 'no'} |"
        )
    lines += ["\n## Every protocol and mode (mean % over records)\n", "| protocol | mode | method | records | mean % |"]
    lines.append("|---|---|---|---|---|")
    summary = records.groupby(["protocol", "mode", "method"])["e2e_mape"].agg(["size", "mean"]).reset_index()
    for row in summary.itertuples():
        lines.append(f"| {row.protocol} | {row.mode} | {row.method} | {row.size} | {row.mean:.1f} |")
    lines += [
        "\n## One model family left out as well (logo+lomo): per_call beside the GPU pair's median time ratio\n",
        "`median_ratio` is the anchor's measured step times the median target/anchor step ratio of the pair over the",
        "other families' workloads of the same mode (it reads the target's measurements of those families; per_call",
        "reads none of the target's). Mean % over the forecasts both made (same anchor, target and workload).\n",
        family_comparison(records).to_markdown(index=False),
    ]
    logo = records[(records["method"] == "per_call") & (records["protocol"] == "logo")]
    inside = (logo["measured_us"] >= logo["lower_us"]) & (logo["measured_us"] <= logo["upper_us"])
    per_gpu = inside.groupby(logo["target"]).mean() * 100
    lines += [
        "\n## 80% interval of unmeasured-GPU forecasts (per_call, logo)\n",
        f"Covered: {inside.mean() * 100:.1f}% of {len(logo)} forecasts (aim 75-85%). Per target GPU: "
        + ", ".join(f"{gpu} {value:.0f}%" for gpu, value in per_gpu.items())
        + ".\n",
    ]
    if transfer is not None:
        lines += [
            "## Measured pairs: per_call (lomo) beside transfer (leave-one-model-out)\n",
            transfer.to_markdown(index=False),
        ]
    return "\n".join(lines) + "\n"


def transfer_comparison(records: pd.DataFrame, rows_path: Path) -> pd.DataFrame | None:
    """Per (anchor, target) pair both forecast: mean % error of per_call (lomo) and of transfer, and the better one."""
    if not rows_path.is_file():
        return None
    transfer = pd.read_csv(rows_path)
    transfer = transfer[transfer["method"] == "transfer"].rename(columns={"optimizer": "mode"})
    transfer["transfer_mape"] = (transfer["predicted_s"] / transfer["measured_s"] - 1).abs() * 100
    ours = records[(records["protocol"] == "lomo") & (records["method"] == "per_call")]
    joined = ours.merge(transfer, on=["anchor", "target", "model", "mode", "batchsize"])
    if joined.empty:
        return None
    pairs = joined.groupby(["anchor", "target"])[["e2e_mape", "transfer_mape"]].mean().reset_index()
    pairs["better"] = np.where(pairs["e2e_mape"] < pairs["transfer_mape"], "per_call", "transfer")
    total = pd.DataFrame(
        [
            {
                "anchor": "all",
                "target": "all",
                "e2e_mape": pairs["e2e_mape"].mean(),
                "transfer_mape": pairs["transfer_mape"].mean(),
            }
        ]
    )
    total["better"] = np.where(total["e2e_mape"] < total["transfer_mape"], "per_call", "transfer")
    return pd.concat([pairs, total], ignore_index=True).round(1).rename(columns={"e2e_mape": "per_call_mape"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.new_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NeuSight folder (label files, device configs)")
    parser.add_argument("--json", type=Path, default=None, help="also write every record here")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "new-gpu.md")
    parser.add_argument("--transfer-rows", type=Path, default=TRANSFER_ROWS)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        raise ProfcastError(f"--data {args.data}: no such folder; expected a NeuSight checkout")
    records = run_benchmark(args.data)
    table = comparison(records, published_errors(args.data / SUMMARY))
    transfer = transfer_comparison(records, args.transfer_rows)
    text = render(records, table, transfer)
    args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(records.replace({np.nan: None}).to_dict("records"), indent=1))
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
