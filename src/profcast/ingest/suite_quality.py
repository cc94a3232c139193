"""The suite's verdict on a trace it wrote: ``noisy_measurement`` from the ``suite-manifest.json`` beside it.

``profcast collect suite`` flags a workload whose timed steps spread too wide or whose machine was
busy (``profcast.collect.quality``); the flag lives in the manifest, so a trace read from a suite's
folder (``convert``, ``data=file``) carries it as a column, and training can say how many of its pairs
stand on noise.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from profcast.schema import NOISY_MEASUREMENT

SUITE_MANIFEST = "suite-manifest.json"  # what `profcast collect suite` writes beside its traces
TRACE_SUFFIX = ".pt.trace.json.gz"


def measurement_flag(trace) -> dict:
    """``{noisy_measurement: 1.0 | 0.0}`` for a trace its suite judged, else ``{}`` (no manifest, no verdict)."""
    trace = Path(trace)
    if not trace.name.endswith(TRACE_SUFFIX):
        return {}
    manifest = trace.parent / SUITE_MANIFEST
    try:
        stamp = manifest.stat().st_mtime_ns
    except OSError:
        return {}
    record = _workloads(str(manifest), stamp).get(trace.name[: -len(TRACE_SUFFIX)], {})
    if "noisy" not in record:  # recorded before the suite judged measurements
        return {}
    return {NOISY_MEASUREMENT: 1.0 if record["noisy"] else 0.0}


@lru_cache(maxsize=64)
def _workloads(manifest: str, stamp: int) -> dict:
    """The manifest's workloads, read once per version of the file (``stamp``); {} if it is not one."""
    try:
        content = json.loads(Path(manifest).read_text())
    except (OSError, ValueError):
        return {}
    workloads = content.get("workloads") if isinstance(content, dict) else None
    return workloads if isinstance(workloads, dict) else {}
