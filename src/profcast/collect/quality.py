"""How steady a workload's measurement was: its step timed again and again, the spread, the machine's load, the flag.

A busy machine makes a catalogue of noise: on a CPU shared with other jobs, steps at 2 threads were
measured 10-400x slower than at 1 (issue 32), and a model trained on such pairs ranks phantom
speed-ups. So after its trace every workload times ``REPEATS`` more steps, unprofiled. Its
measurement is *noisy* when the slowest of them took more than ``SPREAD_LIMIT`` times the fastest,
or when the machine's load (1-minute load average) was above its cores plus a half: other work was
competing for them. The runner measures a workload whose steps spread too wide once more and keeps
the flag if it stays.
"""

from __future__ import annotations

import os
import time

REPEATS = 5  # timed steps after the trace: enough for a slowest/fastest ratio, cheap beside the trace itself
SPREAD_LIMIT = 1.5  # slowest / fastest timed step above this: the step time is not one number
SPARE_LOAD = 0.5  # load average above cores + this: something else was running on them


def time_steps(step, device: str, synchronize, repeats: int = REPEATS) -> dict:
    """Run ``step`` ``repeats`` times, each timed to its end on the device; the seconds and the machine's load."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return {"step_seconds": seconds, "load_average": machine_load()}


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes), where the OS says."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def usable_cores() -> int:
    """Cores this process may run on (its affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def judge(timing: dict | None) -> dict:
    """The manifest's quality fields for one measurement: ``step_spread``, ``load_average``, ``noisy`` and why."""
    if not timing or not timing.get("step_seconds"):
        return {}  # a run that timed nothing (a step function of the user's): no judgement
    seconds = timing["step_seconds"]
    spread = max(seconds) / min(seconds) if min(seconds) > 0 else float("inf")
    load, cores = timing.get("load_average"), usable_cores()
    reasons = []
    if spread > SPREAD_LIMIT:
        reasons.append(f"slowest of {len(seconds)} timed steps {spread:.2f}x the fastest (limit {SPREAD_LIMIT})")
    if load is not None and load > cores + SPARE_LOAD:
        reasons.append(f"load average {load:g} on {cores} cores: other work competed for them")
    return {
        "step_seconds": [round(s, 6) for s in seconds],
        "step_spread": round(spread, 3),
        "load_average": load,
        "noisy": bool(reasons),
        "noise": "; ".join(reasons) or None,
    }
