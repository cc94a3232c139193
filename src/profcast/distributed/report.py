"""A plan's forecast and a search's rankings as text, the way ``profcast plan`` prints them."""

from __future__ import annotations

import pandas as pd

from profcast.distributed.model_config import ModelShape
from profcast.distributed.step import StepForecast
from profcast.distributed.system import GpuSystem

TERM_LABELS = {
    "compute": "compute (GPU)",
    "host_overhead": "host dispatch not hidden",
    "tp_collectives": "TP all-reduces",
    "pipeline_bubble": "pipeline bubble (1F1B)",
    "p2p_sends": "pipeline sends",
    "dp_allreduce": "DP all-reduce, exposed",
    "optimizer": "optimizer and per-step",
}


def plan_report(shape: ModelShape, system: GpuSystem, forecast: StepForecast) -> str:
    """One plan: the plan, step time and each of its terms on its own line, throughput, memory, cost."""
    plan, memory = forecast.plan, forecast.memory.as_gb()
    lines = [
        f"plan: {shape.name} ({shape.parameters() / 1e9:.2f} B parameters) on {plan.gpus} x {system.name}: "
        f"tp {plan.tp} x pp {plan.pp} x dp {plan.dp}, micro-batch {plan.micro_batch} x {plan.microbatches} "
        f"micro-batches, global batch {plan.global_batch}, seq {plan.seq}, {plan.precision}, "
        f"recompute {'on' if plan.recompute else 'off'}, ZeRO {plan.zero}",
        f"step time                  {forecast.step_ms:12.1f} ms",
    ]
    lines += [f"  {TERM_LABELS[name]:25s}{ms:12.1f} ms" for name, ms in forecast.terms.items()]
    lines += [
        f"tokens/s                   {forecast.tokens_per_s:12,.0f}",
        f"MFU                        {forecast.mfu * 100:11.1f} %",
        f"memory per GPU             {memory['total']:12.1f} GB of {forecast.memory_capacity_gb:.1f} GB: "
        + ("fits" if forecast.fits else "DOES NOT FIT"),
        "  "
        + ", ".join(f"{kind.replace('_', ' ')} {gb:.1f}" for kind, gb in memory.items() if kind != "total")
        + " GB",
        f"time per 1M tokens         {forecast.hours_per_million_tokens * 3600:12.1f} s",
        "cost per 1M tokens         "
        + (
            f"{forecast.cost_per_million_tokens:12.2f} USD (at {forecast.price_per_gpu_hour:.2f} USD per GPU-hour)"
            if forecast.cost_per_million_tokens is not None
            else "         n/a (no price for this GPU in conf/gpus.yaml; --price-per-gpu-hour sets one)"
        ),
    ]
    return "\n".join(lines)


def ranking_report(by_time: pd.DataFrame, by_cost: pd.DataFrame, top: int) -> str:
    """The search's two rankings, ``top`` plans each (plans that do not fit come last, marked)."""
    columns = ["gpu", "gpus", "tp", "pp", "dp", "micro_batch", "recompute", "zero", "step_ms", "tokens_per_s", "mfu"]
    columns += ["memory_gb_per_gpu", "fits", "gpu_hours_per_1m_tokens", "cost_per_1m_tokens"]
    priced = by_cost["cost_per_1m_tokens"].notna().all()
    cheapest = "cost per 1M tokens" if priced else "GPU-hours per 1M tokens (not every GPU has a price)"
    parts = [f"{len(by_time)} valid plans"]
    for title, table in (
        (f"fastest {min(top, len(by_time))}", by_time),
        (f"cheapest {min(top, len(by_cost))}, by {cheapest}", by_cost),
    ):
        shown = table.head(top)[columns].copy()
        shown["step_ms"] = shown["step_ms"].round(1)
        shown["tokens_per_s"] = shown["tokens_per_s"].round(0).astype(int)
        shown["mfu"] = (shown["mfu"] * 100).round(1)
        shown["memory_gb_per_gpu"] = shown["memory_gb_per_gpu"].round(1)
        shown["gpu_hours_per_1m_tokens"] = shown["gpu_hours_per_1m_tokens"].map(lambda v: f"{v:.4f}")
        shown["cost_per_1m_tokens"] = shown["cost_per_1m_tokens"].map(
            lambda v: "n/a" if v is None or pd.isna(v) else f"{v:.2f}"
        )
        parts.append(f"\n{title}:\n" + shown.to_string(index=False))
    return "\n".join(parts)
