"""What a job model knows of its training pairs' measurements, and the warnings a forecast built on them carries.

At training, per target: how many workload pairs have a step time on both instances, how many of
them stand on a measurement the suite flagged noisy (``noisy_measurement``, profcast.collect.quality),
and the range of speed-ups (anchor step time / target step time) those pairs showed. At forecast,
a target trained on flagged pairs, or a predicted speed-up outside every speed-up its pairs showed,
gets a warning line (CLI notes, the web page's notes, the ``Forecast``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profcast.schema import BATCH_LATENCY, NOISY_MEASUREMENT, WORKLOAD_KEYS

SPEEDUP_SLACK = 1.25  # a speed-up this far past the trained range is an extrapolation worth a warning


def measurement_record(profiles: pd.DataFrame, anchor: str, targets) -> dict:
    """Per target: ``pairs`` (workloads timed on both), ``noisy_pairs`` (either side flagged) and ``speedup`` [min, max]."""
    if BATCH_LATENCY not in profiles.columns:
        return {}
    noisy = profiles[NOISY_MEASUREMENT] if NOISY_MEASUREMENT in profiles.columns else pd.Series(0.0, profiles.index)
    timed = profiles.assign(_noisy=noisy.fillna(0.0) > 0).dropna(subset=[BATCH_LATENCY])
    timed = timed[timed[BATCH_LATENCY] > 0]
    sides = {
        name: timed[timed["instance_name"] == name]
        .groupby(WORKLOAD_KEYS, as_index=False)
        .agg(latency=(BATCH_LATENCY, "median"), noisy=("_noisy", "any"))
        for name in (anchor, *targets)
    }
    record = {}
    for target in targets:
        both = sides[anchor].merge(sides[target], on=WORKLOAD_KEYS, suffixes=("_anchor", "_target"))
        if both.empty:
            continue
        speedups = both["latency_anchor"] / both["latency_target"]
        record[target] = {
            "pairs": len(both),
            "noisy_pairs": int((both["noisy_anchor"] | both["noisy_target"]).sum()),
            "speedup": [float(speedups.min()), float(speedups.max())],
        }
    return record


def forecast_warnings(record: dict | None, table: pd.DataFrame) -> list[str]:
    """Warning lines for a ranking (recommend's table): targets trained on noisy pairs, speed-ups past the trained range."""
    if not record:
        return []
    notes = []
    flagged = {t: r for t, r in record.items() if r.get("noisy_pairs") and t in set(table["instance"])}
    if flagged:
        shown = ", ".join(f"{t} ({r['noisy_pairs']} of {r['pairs']})" for t, r in flagged.items())
        notes.append(
            f"WARNING: trained on pairs measured noisy (a busy machine or unsteady steps): {shown}; "
            "their forecasts are as unreliable as those measurements (docs/collect.md)"
        )
    if "speedup" in table:
        for instance, speedup in zip(table["instance"], table["speedup"]):
            trained = (record.get(instance) or {}).get("speedup")
            if trained is None or not np.isfinite(speedup):
                continue
            low, high = trained
            if speedup > high * SPEEDUP_SLACK or speedup < low / SPEEDUP_SLACK:
                notes.append(
                    f"WARNING: {instance}: a {speedup:.2f}x speed-up, beyond any its training pairs showed "
                    f"({low:.2f}x to {high:.2f}x): an extrapolation"
                )
    return notes
