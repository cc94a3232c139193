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

from profcast.cli import run_cli
from profcast.distributed.answers import gpu_planner, one_plan, plan_answer, ranked_plans, rankings_answer
from profcast.distributed.layer_profile import read_layer_profile
from profcast.distributed.model_config import read_model_config
from profcast.distributed.report import plan_report, ranking_report
from profcast.errors import ProfcastError
from profcast.progress import track


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
    planners = [gpu_planner(shape, path, args.price_per_gpu_hour, profile) for path in args.gpu]
    counts = _gpu_counts(args.gpus)
    if args.search:
        by_time, by_cost = ranked_plans(
            planners,
            counts,
            args.global_batch,
            args.seq,
            args.precision,
            lambda rows, total: track(rows, "plans", total=total),
        )
        if args.json:
            print(json.dumps(rankings_answer(by_time, by_cost, args.top), indent=1))
        else:
            print(ranking_report(by_time, by_cost, args.top))
        return 0
    if len(planners) > 1 or len(counts) > 1:
        raise ProfcastError("one --gpu and one --gpus count per plan; several are for --search")
    plan = one_plan(shape, counts[0], vars(args))
    if args.json:
        print(json.dumps(plan_answer(planners[0], plan), indent=1))
    else:
        print(plan_report(shape, planners[0].system, planners[0].forecast(plan)))
    return 0


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
