"""The distributed plan model (``profcast plan``) scored on measured multi-GPU steps, and the plan search's speed.

    python -m benchmarks.distributed [--data ../shared/data] [--json benchmarks/results/distributed.json]
                                     [--fit] [--search-gpus 1024]

Records (source, config id, GPUs, tp, pp, dp, measured ms, forecast ms, ape) for:

- vTrain's 1,440 single-node rows (8 x A100 SXM, Megatron-DeepSpeed, mixed precision), forecast with
  constants fitted leaving that row's model size out (8 sizes: hidden 1024/2048 x 12-24 layers); the
  in-sample error (constants fitted on all rows, those shipped in ``profcast.distributed.constants``)
  is reported beside it. vTrain's published simulator error on these rows: 8.37% MAPE (MICRO 2024).
  Also: for each model size, whether the measured fastest plan (global batch fixed) is among the
  five fastest forecast.
- NeuSight's 4 x A100 / 4 x H100 DP, TP and PP labels (FP32), forecast with FP32 compute constants
  fitted on NeuSight's single-GPU training steps only and the communication constants fitted on vTrain;
  NeuSight's own errors on the same cases come from its ``summary/distributed.csv``.
- The time ``--search`` takes over every plan of one model on ``--search-gpus`` GPUs of one kind.

``--fit`` prints the constants fitted on all rows (to paste into ``profcast.distributed.constants``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.distributed import constants as shipped
from profcast.distributed import terms
from profcast.distributed.fit import absolute_percentage_errors, fit_constants, forecast_ms, held_out_forecasts
from profcast.distributed.ground_truth import NEUSIGHT_LABELS, neusight_steps, neusight_system, vtrain_steps
from profcast.distributed.layer_profile import read_layer_profile
from profcast.distributed.model_config import read_model_config
from profcast.distributed.search import rank_plans, search_plans
from profcast.distributed.step import Planner
from profcast.distributed.system import read_gpu_system

DEFAULT_DATA = Path("..") / "shared" / "data"
RESULTS = Path("benchmarks") / "results"
VTRAIN_PUBLISHED_MAPE = 8.37  # vTrain (MICRO 2024), its simulator on these 1,440 rows
SEARCH_MODEL = Path("examples") / "models" / "llama-3-8b" / "config.json"
# NeuSight's summary/distributed.csv: (GPU folder, model, batch, split) -> NeuSight's percentage error.
NEUSIGHT_PUBLISHED = {
    ("NVIDIA_A100-SXM4-40GB", "gpt2_large", 4, "dp4"): 12.9,
    ("NVIDIA_A100-SXM4-40GB", "gpt2_large", 4, "tp4"): 8.4,
    ("NVIDIA_A100-SXM4-40GB", "gpt2_large", 4, "pp4_1"): 10.3,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 4, "dp4"): 9.9,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 4, "tp4"): 8.0,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 4, "pp4_1"): 2.0,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 16, "dp4"): 1.2,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 16, "tp4"): 13.1,
    ("NVIDIA_H100_80GB_HBM3", "gpt2_large", 16, "pp4_1"): 10.7,
    ("NVIDIA_H100_80GB_HBM3", "gpt3_xl", 4, "tp4"): 3.7,
    ("NVIDIA_H100_80GB_HBM3", "gpt3_xl", 4, "pp4_1"): 4.6,
}
# The attention core's table time is held at its measured value (factor 1): fitted freely it trades
# off against the memory-bound softmax traffic (both grow as seq^2) and runs to its bound.
MIXED_FREE = tuple(name for name in shipped.NAMES if name != "attention")
FP32_FREE = ("gemm", "attention", "memory", "host_layer_ms")


def raw_table(steps, systems: dict, profiles: dict | None = None, constants: dict | None = None) -> pd.DataFrame:
    """One row of raw times per measured step (a Planner per model and GPU, with its layer profile if given)."""
    planners, rows = {}, []
    for step in steps:
        key = (step.shape, step.gpu)
        if key not in planners:
            profile = (profiles or {}).get(key)
            planners[key] = Planner(step.shape, systems[step.gpu], constants, layer_profile=profile)
        rows.append(planners[key].raw_step(step.plan))
    return pd.DataFrame(rows)


def records(steps, forecast) -> list[dict]:
    """The benchmark's rows: (source, config id, GPUs, tp, pp, dp, measured ms, forecast ms, ape)."""
    ape = absolute_percentage_errors(forecast, [s.measured_ms for s in steps])
    return [
        {
            "source": s.source,
            "config_id": s.config_id,
            "model": s.shape.name,
            "gpus": s.plan.gpus,
            "tp": s.plan.tp,
            "pp": s.plan.pp,
            "dp": s.plan.dp,
            "micro_batch": s.plan.micro_batch,
            "global_batch": s.plan.global_batch,
            "measured_ms": s.measured_ms,
            "forecast_ms": float(f),
            "ape": float(e),
        }
        for s, f, e in zip(steps, forecast, ape)
    ]


def top5_contains_fastest(table: pd.DataFrame, job: list[str]) -> dict:
    """For each job (rows equal in ``job``'s columns), whether its measured fastest plan is in the forecast top 5."""
    hits = {}
    for key, group in table.groupby(job):
        fastest = group["measured_ms"].idxmin()
        hits[" ".join(f"{c}={v}" for c, v in zip(job, key))] = bool(fastest in group.nsmallest(5, "forecast_ms").index)
    return hits


def score_vtrain(data: Path) -> tuple[list[dict], dict, dict]:
    """vTrain's rows forecast held out by model size, with the in-sample fit and the top-5 check."""
    steps = vtrain_steps(data)
    if not steps:
        return [], {}, {}
    systems = {"a100_sxm": read_gpu_system(data / "aiconfigurator" / "systems" / "a100_sxm.yaml")}
    raw, measured = raw_table(steps, systems), np.array([s.measured_ms for s in steps])
    start = shipped.constants_for("bf16")
    groups = [s.shape.name for s in steps]
    start = start | {"attention": 1.0}
    held_out = held_out_forecasts(raw, measured, groups, start, MIXED_FREE)
    fitted = fit_constants(raw, measured, start, MIXED_FREE)
    in_sample = forecast_ms(raw, fitted)
    shares = pd.DataFrame(terms.step_terms(raw, fitted)).div(in_sample, axis=0)
    rows = records(steps, held_out)
    table = pd.DataFrame(rows)
    top5 = top5_contains_fastest(table, ["model", "global_batch"])
    top5_per_count = top5_contains_fastest(table, ["model", "global_batch", "gpus"])
    summary = {
        "rows": len(steps),
        "held_out_mape": float(table["ape"].mean()),
        "in_sample_mape": float(absolute_percentage_errors(in_sample, measured).mean()),
        "published_vtrain_mape": VTRAIN_PUBLISHED_MAPE,
        "mean_term_share": {name: float(share) for name, share in shares.mean().items()},
        "top5_contains_fastest": top5,
        "top5_hits": f"{sum(top5.values())}/{len(top5)}",
        "top5_hits_per_gpu_count": f"{sum(top5_per_count.values())}/{len(top5_per_count)}",
    }
    return rows, summary, fitted


def score_neusight(data: Path, communication: dict) -> tuple[list[dict], dict, dict]:
    """NeuSight's distributed labels, FP32 compute fitted on its single-GPU steps only."""
    single, distributed = neusight_steps(data, distributed=False), neusight_steps(data, distributed=True)
    if not distributed:
        return [], {}, {}
    systems = {s.gpu: neusight_system(data, s.gpu) for s in single + distributed}
    start = shipped.constants_for("fp32") | communication
    single_raw, single_measured = raw_table(single, systems), [s.measured_ms for s in single]
    fitted = fit_constants(single_raw, single_measured, start, FP32_FREE)
    single_mape = float(absolute_percentage_errors(forecast_ms(single_raw, fitted), single_measured).mean())
    forecast = forecast_ms(raw_table(distributed, systems), fitted)
    rows = records(distributed, forecast)
    for row, step in zip(rows, distributed):
        model, _, _, batch, split = step.config_id.split("/")[1].split("-", 4)
        row["neusight_published_ape"] = NEUSIGHT_PUBLISHED.get((step.gpu, model, int(batch), split))
    traced = layer_traced_forecasts(data, distributed, systems, fitted)
    for row, forecast_with_trace in zip(rows, traced):
        row["forecast_ms_with_layer_trace"] = forecast_with_trace
        row["ape_with_layer_trace"] = (
            None if forecast_with_trace is None else abs(forecast_with_trace / row["measured_ms"] - 1) * 100
        )
    with_trace = [r for r in rows if r["ape_with_layer_trace"] is not None and r["neusight_published_ape"] is not None]
    compared = [r for r in rows if r["neusight_published_ape"] is not None]
    summary = {
        "cases": len(compared),
        "mean_ape": float(np.mean([r["ape"] for r in compared])) if compared else None,
        "neusight_published_mean_ape": float(np.mean([r["neusight_published_ape"] for r in compared]))
        if compared
        else None,
        "with_layer_trace": {
            "cases": len(with_trace),
            "mean_ape": float(np.mean([r["ape_with_layer_trace"] for r in with_trace])) if with_trace else None,
            "mean_ape_without_trace": float(np.mean([r["ape"] for r in with_trace])) if with_trace else None,
            "neusight_published_mean_ape": (
                float(np.mean([r["neusight_published_ape"] for r in with_trace])) if with_trace else None
            ),
        },
        "fp32_fitted_on_single_gpu_steps": len(single),
        "fp32_single_gpu_in_sample_mape": single_mape,
    }
    return rows, summary, fitted


def layer_traced_forecasts(data: Path, steps, systems: dict, constants: dict) -> list:
    """Each distributed step forecast with a traced layer of the same model and sequence on the same GPU
    (NeuSight's single-GPU training label of that length nearest the micro-batch), or None where there is none."""
    forecasts = []
    for step in steps:
        folder = data / NEUSIGHT_LABELS / step.gpu
        traces = [p for p in folder.glob(f"{step.shape.name}-train-{step.plan.seq}-*.csv") if p.stem[-1].isdigit()]
        traces = [p for p in traces if p.stem.rsplit("-", 1)[1].isdigit()]  # single-GPU labels only
        # the trace whose batch is nearest the plan's micro-batch (in ratio): the least scaling
        traces.sort(key=lambda p: abs(np.log(int(p.stem.rsplit("-", 1)[1]) / step.plan.micro_batch)))
        if not traces:
            forecasts.append(None)
            continue
        profiles = {(step.shape, step.gpu): read_layer_profile(traces[0])}
        forecasts.append(float(forecast_ms(raw_table([step], systems, profiles, constants), constants)[0]))
    return forecasts


def time_search(data: Path, gpus: int) -> dict:
    """Seconds to forecast and rank every plan of the example Llama on ``gpus`` H100s (or A100s)."""
    system_file = data / "aiconfigurator" / "systems" / "h100_sxm.yaml"
    if not system_file.exists() or not SEARCH_MODEL.exists():
        return {}
    started = time.perf_counter()
    planner = Planner(read_model_config(SEARCH_MODEL), read_gpu_system(system_file))
    rows = list(search_plans([planner], [gpus], 1024, 4096, "bf16"))
    rank_plans(rows, "time"), rank_plans(rows, "cost")
    seconds = time.perf_counter() - started
    command = [
        sys.executable,
        "-m",
        "profcast.plan",
        "--search",
        "--model",
        str(SEARCH_MODEL),
        "--gpu",
        str(system_file),
    ]
    command += ["--gpus", str(gpus), "--global-batch", "1024", "--seq", "4096"]
    started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True)
    command_seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    command_cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    return {
        "gpus": gpus,
        "model": str(SEARCH_MODEL),
        "global_batch": 1024,
        "seq": 4096,
        "plans": len(rows),
        "seconds_in_process": seconds,
        "seconds_command": command_seconds,
        "cpu_seconds_command": command_cpu,  # the wall time above includes waiting on a shared machine
    }


def main(argv=None) -> int:
    """Score the plan model on vTrain and NeuSight, time the search, write the records as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=RESULTS / "distributed.json")
    parser.add_argument("--fit", action="store_true", help="print the constants fitted on all rows")
    parser.add_argument("--search-gpus", type=int, default=1024)
    args = parser.parse_args(argv)
    vtrain_rows, vtrain, mixed = score_vtrain(args.data)
    if not vtrain_rows:
        print(f"no vTrain data under {args.data}: nothing to score")
        return 0
    communication = {k: mixed[k] for k in shipped.COMMUNICATION_NAMES}
    neusight_rows, neusight, fp32 = score_neusight(args.data, communication)
    search = time_search(args.data, args.search_gpus)
    shares = ", ".join(f"{name} {share * 100:.1f}%" for name, share in vtrain["mean_term_share"].items())
    print(f"vTrain, mean share of the step (in-sample constants): {shares}")
    print(
        f"vTrain single node: {vtrain['rows']} rows, MAPE held out by model size {vtrain['held_out_mape']:.2f}%, "
        f"in-sample {vtrain['in_sample_mape']:.2f}% (vTrain's own {VTRAIN_PUBLISHED_MAPE}%); measured fastest plan "
        f"in the forecast top 5: {vtrain['top5_hits']} jobs (model size, global batch), "
        f"{vtrain['top5_hits_per_gpu_count']} at a fixed GPU count"
    )
    if neusight:
        print(
            f"NeuSight distributed: {neusight['cases']} cases, mean error {neusight['mean_ape']:.2f}% "
            f"(NeuSight's own {neusight['neusight_published_mean_ape']:.2f}%)"
        )
        traced = neusight["with_layer_trace"]
        if traced["cases"]:
            print(
                f"  with a traced layer (same GPU, model and sequence): {traced['cases']} cases, "
                f"{traced['mean_ape']:.2f}% (without {traced['mean_ape_without_trace']:.2f}%, "
                f"NeuSight's own {traced['neusight_published_mean_ape']:.2f}%)"
            )
        for row in neusight_rows:
            print(
                f"  {row['config_id']:55s} measured {row['measured_ms']:8.1f} forecast {row['forecast_ms']:8.1f}"
                f"  {row['ape']:5.1f}%  NeuSight {row['neusight_published_ape']}%"
            )
    if search:
        print(
            f"search: {search['plans']} plans on {search['gpus']} GPUs in {search['seconds_in_process']:.2f} s "
            f"in process, {search['seconds_command']:.2f} s as a command (start-up included; "
            f"{search['cpu_seconds_command']:.2f} s of CPU)"
        )
    if args.fit:
        print("mixed:", {k: round(v, 4) for k, v in mixed.items()})
        print("fp32:", {k: round(v, 4) for k, v in fp32.items()})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"vtrain": vtrain, "neusight": neusight, "search": search, "constants": {"mixed": mixed, "fp32": fp32}}
    records_text = ",\n".join(json.dumps(record) for record in vtrain_rows + neusight_rows)
    # one record per line: the file diffs and greps by row
    args.json.write_text(json.dumps(payload, indent=1)[:-2] + ',\n "records": [\n' + records_text + "\n ]\n}\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
