"""Plausible-value limits: a profile value past one is a unit or export mistake, refused before it trains or serves.

The bounds are far above anything a real training step records, so no honest profile meets them,
yet low enough that one bad cell (1e300 µs, a latency in microseconds instead of seconds) cannot
wreck a model's metrics. docs/reliability.md explains each choice.
"""

from __future__ import annotations

from profcast.schema import BATCH_LATENCY

# One op's total time in one profiled run, in microseconds: 1e12 µs is 11.6 days.
MAX_OP_TIME_US = 1e12
# Seconds per training step: one day.
MAX_BATCH_LATENCY_S = 86_400.0
# Seconds per epoch: one year.
MAX_EPOCH_LATENCY_S = 365 * 86_400.0

LIMITS = {BATCH_LATENCY: MAX_BATCH_LATENCY_S, "epoch_latency": MAX_EPOCH_LATENCY_S}


def value_limit(column: str) -> float:
    """The largest plausible value of a profile column (an op time unless it is a latency)."""
    return LIMITS.get(column, MAX_OP_TIME_US)


def value_rule(column: str) -> str:
    """What an accepted value of ``column`` looks like, for the end of an error message."""
    if column == BATCH_LATENCY:
        return f"batch_latency is the measured seconds per training step: a finite number from 0 to {MAX_BATCH_LATENCY_S:g} (1 day), or empty"
    if column == "epoch_latency":
        return f"epoch_latency is the measured seconds per epoch: a finite number from 0 to {MAX_EPOCH_LATENCY_S:g} (1 year), or empty"
    return f"op times are microseconds per run: finite numbers from 0 to {MAX_OP_TIME_US:g}"
