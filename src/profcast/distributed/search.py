"""Every valid plan of a model over given GPU kinds and counts, forecast and ranked by time and by cost.

For each GPU count: tensor degrees that divide the heads and fit in one node, pipeline degrees that
divide the layers, the data degree that makes up the count, micro-batches (powers of two) that divide
each data-parallel share of the global batch, activation recomputation off and on, ZeRO 0 and 1. A
plan the checks refuse is skipped; a plan that does not fit in memory is kept but ranked after every
plan that fits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from profcast.distributed.plan import ParallelPlan, validate_plan
from profcast.distributed.step import Planner
from profcast.errors import ProfcastError


def divisors(number: int) -> list[int]:
    """The positive divisors of ``number``, ascending."""
    return [d for d in range(1, number + 1) if number % d == 0]


def candidate_plans(planner: Planner, gpus: int, global_batch: int, seq: int, precision: str) -> Iterator[ParallelPlan]:
    """Every plan of ``gpus`` GPUs the checks accept, for ``planner``'s model and GPU kind."""
    shape, per_node = planner.shape, planner.system.gpus_per_node
    for tp in (d for d in divisors(gpus) if d <= per_node):
        for pp in divisors(gpus // tp):
            dp = gpus // (tp * pp)
            if shape.layers % pp or global_batch % dp:
                continue
            share = global_batch // dp
            for micro_batch in (m for m in divisors(share) if m & (m - 1) == 0):
                for recompute in (False, True):
                    for zero in (0, 1) if dp > 1 else (0,):
                        plan = ParallelPlan(
                            gpus, tp, pp, dp, micro_batch, global_batch, seq, precision, recompute, zero
                        )
                        try:
                            yield validate_plan(plan, shape)
                        except ProfcastError:
                            continue


def count_plans(planners: list[Planner], gpu_counts, global_batch: int, seq: int, precision: str) -> int:
    """How many plans ``search_plans`` will forecast (for the progress bar)."""
    return sum(1 for p in planners for g in gpu_counts for _ in candidate_plans(p, g, global_batch, seq, precision))


def search_plans(planners: list[Planner], gpu_counts, global_batch: int, seq: int, precision: str) -> Iterator[dict]:
    """Forecast every candidate plan; yields one row per plan (GPU kind, plan, step, memory, fit, cost)."""
    for planner in planners:
        for gpus in gpu_counts:
            for plan in candidate_plans(planner, gpus, global_batch, seq, precision):
                forecast = planner.forecast(plan)
                yield {
                    "gpu": planner.system.name,
                    **{k: v for k, v in plan.as_dict().items() if k not in ("global_batch", "seq", "precision")},
                    "step_ms": forecast.step_ms,
                    "tokens_per_s": forecast.tokens_per_s,
                    "mfu": forecast.mfu,
                    "memory_gb_per_gpu": forecast.memory.total / 1e9,
                    "fits": forecast.fits,
                    "gpu_hours_per_1m_tokens": forecast.hours_per_million_tokens * plan.gpus,
                    "cost_per_1m_tokens": forecast.cost_per_million_tokens,
                }


def rank_plans(rows: list[dict], by: str) -> pd.DataFrame:
    """The plans ranked by ``by`` ("time": step time; "cost": cost, else GPU-hours, per 1M tokens), fitting ones first."""
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if by == "time":
        key = "step_ms"
    else:
        key = "cost_per_1m_tokens" if table["cost_per_1m_tokens"].notna().all() else "gpu_hours_per_1m_tokens"
    table["_misfit"] = ~table["fits"].astype(bool)
    ranked = table.sort_values(["_misfit", key], kind="stable").drop(columns="_misfit")
    return ranked.reset_index(drop=True)
