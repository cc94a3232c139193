"""Plan a distributed training run: step time, memory and cost of a transformer on N GPUs, before renting them.

    profcast plan --model config.json --gpu FIGURES --gpus N --tp T --pp P --dp D --micro-batch M
                  --global-batch G --seq S [--precision bf16] [--recompute] [--zero 0|1] [--json]
                  [--layer-profile LABEL.csv]
    profcast plan --search --model config.json --gpu FIGURES [--gpu FIGURES ...] --gpus N[,N...]
                  --global-batch G --seq S [--top K] [--json]

``--model`` is a HuggingFace config.json (GPT-2 or Llama style); ``--gpu`` an AIConfigurator
``systems/<gpu>.yaml`` (its measured GEMM and NCCL tables are used) or profcast figures with a
``node:`` section (docs/distributed.md). Prices per GPU-hour come from conf/gpus.yaml where a cloud
instance has exactly that one GPU (else n/a), or ``--price-per-gpu-hour``.
"""

from __future__ import annotations

import argparse
import json

import yaml

from profcast.cli import run_cli
from profcast.config import CONF_DIR
from profcast.distributed.layer_profile import read_layer_profile
from profcast.distributed.model_config import read_model_config
from profcast.distributed.plan import ParallelPlan, validate_plan
from profcast.distributed.report import plan_report, ranking_report
from profcast.distributed.search import count_plans, rank_plans, search_plans
from profcast.distributed.step import Planner
from profcast.distributed.system import read_gpu_system
from profcast.errors import ProfcastError
from profcast.progress import track

GPU_CATALOGUE = CONF_DIR / "gpus.yaml"
# AIConfigurator system names -> the conf/gpus.yaml entry of the same GPU (for its price).
CATALOGUE_NAMES = {
    "a100_sxm": "a100-sxm4-40gb",
    "a100_pcie": "a100-pcie-40gb",
    "h100_sxm": "h100-80gb-hbm3",
    "l4": "l4",
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``profcast: error:`` line (exit 2), not usage plus error."""

    def error(self, message):
        """Raise the parse error as a user error."""
        raise ProfcastError(f"profcast plan: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The options of ``profcast plan``."""
    parser = OneLineParser(prog="profcast plan", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="HuggingFace config.json (GPT-2 or Llama style)")
    parser.add_argument(
        "--gpu", required=True, action="append", help="GPU figures: AIConfigurator systems YAML or profcast's"
    )
    parser.add_argument("--gpus", required=True, help="GPU count (--search: counts, comma-separated)")
    parser.add_argument("--tp", type=int, help="tensor-parallel degree")
    parser.add_argument("--pp", type=int, help="pipeline-parallel degree")
    parser.add_argument("--dp", type=int, help="data-parallel degree")
    parser.add_argument("--micro-batch", type=int, help="sequences per micro-batch")
    parser.add_argument("--global-batch", type=int, required=True, help="sequences per step, all GPUs")
    parser.add_argument("--seq", type=int, required=True, help="sequence length in tokens")
    parser.add_argument("--precision", default="bf16", help="bf16, fp16 or fp32 (default bf16)")
    parser.add_argument("--recompute", action="store_true", help="full activation recomputation")
    parser.add_argument("--zero", type=int, default=0, help="ZeRO stage for the optimizer state: 0 or 1")
    parser.add_argument(
        "--layer-profile",
        help="a measured layer: NeuSight training label CSV of this model on this GPU (docs/distributed.md)",
    )
    parser.add_argument("--price-per-gpu-hour", type=float, help="USD per GPU-hour (default: conf/gpus.yaml)")
    parser.add_argument("--search", action="store_true", help="rank every valid plan by time and by cost")
    parser.add_argument("--top", type=int, default=10, help="--search: plans shown per ranking (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv=None) -> int:
    """``profcast plan``: forecast one plan, or rank every plan with ``--search``."""
    args = build_parser().parse_args(argv)

    shape = read_model_config(args.model)
    profile = None
    if args.layer_profile:
        profile = read_layer_profile(args.layer_profile)
    planners = [_planner(shape, path, args.price_per_gpu_hour, profile) for path in args.gpu]
    counts = _gpu_counts(args.gpus)
    if args.search:
        return _search(planners, counts, args)
    if len(planners) > 1 or len(counts) > 1:
        raise ProfcastError("one --gpu and one --gpus count per plan; several are for --search")
    missing = [
        f"--{name.replace('_', '-')}" for name in ("tp", "pp", "dp", "micro_batch") if getattr(args, name) is None
    ]
    if missing:
        raise ProfcastError(f"a plan needs {', '.join(missing)} (or --search to try every plan)")

    plan = ParallelPlan(
        counts[0],
        args.tp,
        args.pp,
        args.dp,
        args.micro_batch,
        args.global_batch,
        args.seq,
        args.precision,
        args.recompute,
        args.zero,
    )
    forecast = planners[0].forecast(validate_plan(plan, shape))
    if args.json:
        print(json.dumps({"model": shape.name, "gpu": planners[0].system.name} | forecast.as_dict(), indent=1))
    else:
        print(plan_report(shape, planners[0].system, forecast))
    return 0


def _search(planners, counts, args) -> int:

    if args.precision not in ("bf16", "fp16", "fp32"):
        raise ProfcastError(f"--precision {args.precision!r} is not one of bf16, fp16, fp32")
    for option, value in (("--global-batch", args.global_batch), ("--seq", args.seq)):
        if value <= 0:
            raise ProfcastError(f"{option} must be a positive whole number, got {value}")
    total = count_plans(planners, counts, args.global_batch, args.seq, args.precision)
    if total == 0:
        raise ProfcastError(
            f"no valid plan for {planners[0].shape.name} on {', '.join(map(str, counts))} GPUs with global batch "
            f"{args.global_batch}: the global batch must divide among the data-parallel GPUs"
        )
    rows = list(
        track(search_plans(planners, counts, args.global_batch, args.seq, args.precision), "plans", total=total)
    )
    by_time, by_cost = rank_plans(rows, "time"), rank_plans(rows, "cost")
    if args.json:
        # a missing price is null in JSON, not NaN (which JSON does not have)
        top = {
            name: table.head(args.top).astype(object) for name, table in (("by_time", by_time), ("by_cost", by_cost))
        }
        top = {name: table.where(table.notna(), None).to_dict(orient="records") for name, table in top.items()}
        print(json.dumps({"plans": len(rows)} | top, indent=1))
    else:
        print(ranking_report(by_time, by_cost, args.top))
    return 0


def _planner(shape, path, price, layer_profile=None):

    system = read_gpu_system(path)
    if price is None:
        price = _catalogue_price(system.name)
    return Planner(shape, system, price_per_gpu_hour=price, layer_profile=layer_profile)


def _catalogue_price(name: str) -> float | None:
    """USD per GPU-hour of a one-GPU cloud instance of this GPU in conf/gpus.yaml, or None."""

    if not GPU_CATALOGUE.is_file():
        return None
    gpus = (yaml.safe_load(GPU_CATALOGUE.read_text()) or {}).get("gpus", {})
    entry = gpus.get(CATALOGUE_NAMES.get(name, name)) or {}
    price = entry.get("price_per_hour")
    return float(price) if price is not None else None


def _gpu_counts(text: str) -> list[int]:
    counts = []
    for part in str(text).split(","):
        try:
            count = int(part)
        except ValueError:
            raise ProfcastError(
                f"--gpus {text!r}: expected a whole number of GPUs (or several, comma-separated)"
            ) from None
        if count <= 0:
            raise ProfcastError(f"--gpus {text!r}: GPU counts must be positive")
        counts.append(count)
    return counts


if __name__ == "__main__":
    run_cli(main)
