"""Write the generated study as raw tf_stats exports (+ latency sidecars) in the study's folder layout."""

import json
from pathlib import Path

import numpy as np

from profcast.errors import ProfcastError
from profcast.generate.costs import StepModel, run_rows
from profcast.generate.hardware import INSTANCES
from profcast.generate.networks import Workload, workloads
from profcast.ingest.tfstats import REQUIRED_COLUMNS, SIDECAR_SUFFIX

# Bump when the generated values change, so cached copies of older output are not reused.
GENERATOR_VERSION = 1

EXPERIMENTS = ["exp1", "exp2", "exp3"]
# As in the original study, the smallest instance was only profiled in the first repetition.
ONLY_IN_FIRST_EXPERIMENT = {"g3s.xlarge"}

# TensorBoard's full tf_stats header: the columns the reader requires, then the rest of the export.
TFSTATS_HEADER = [
    *REQUIRED_COLUMNS,
    "Total self-time on Device (%)",
    "Cumulative total-self time on Device (%)",
    "Total self-time on Host (%)",
    "Cumulative total-self time on Host (%)",
    "Measured GFLOPs/Sec",
    "Measured Memory BW (GBytes/Sec)",
    "Operational Intensity (FLOPs/Byte)",
    "Bound by",
]


def _tfstats_csv(rows) -> str:
    """Format rows (where, Type, Operation, occurrences, total us, flops, bytes) as a tf_stats export."""
    rows = sorted(rows, key=lambda r: -r[4])  # TensorBoard ranks ops by self-time
    totals = {"Device": sum(r[4] for r in rows if r[0] == "Device"), "Host": sum(r[4] for r in rows if r[0] == "Host")}
    cumulative = {"Device": 0.0, "Host": 0.0}
    lines = [",".join(f'"{c}"' for c in TFSTATS_HEADER)]
    for rank, (where, op_type, operation, occurrences, total, flops, nbytes) in enumerate(rows, start=1):
        share = total / totals[where] if totals[where] else 0.0
        cumulative[where] += share
        device = (share, cumulative[where]) if where == "Device" else (0.0, 0.0)
        host = (share, cumulative[where]) if where == "Host" else (0.0, 0.0)
        seconds = total / 1e6
        gflops = flops / seconds / 1e9 if seconds else 0.0
        bandwidth = nbytes / seconds / 1e9 if seconds else 0.0
        intensity = flops / nbytes if nbytes else 0.0
        bound = "Unknown" if not nbytes else ("Compute" if intensity > 20 else "Memory")
        avg = total / occurrences
        lines.append(
            f'{rank},"{where}","{op_type}","{operation}",{occurrences},{total:.3f},{avg:.3f},{total:.3f},{avg:.3f},'
            f'{device[0]:.4f},{device[1]:.4f},{host[0]:.4f},{host[1]:.4f},{gflops:.3f},{bandwidth:.3f},{intensity:.3f},"{bound}"'
        )
    return "\n".join(lines) + "\n"


def run_file_name(workload: Workload) -> str:
    """Our own run-file name: ``<dataset>-<model>-<optimizer>-<batchsize>.csv``."""
    return f"{workload.dataset}-{workload.model}-{workload.optimizer}-{workload.batchsize}.csv"


def generate_tree(out_dir, seed: int = 0, instances=None) -> int:
    """Write the whole study (2,520 runs) as ``<out_dir>/<exp>/<instance>/<run>.csv`` + sidecars.

    Deterministic for a seed; ``instances`` limits it to some instances, whose files are then
    byte-identical to those of the whole study. Returns the number of tf_stats CSV files written.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ProfcastError(f"seed {seed!r} is not a non-negative integer")
    if isinstance(instances, str):
        instances = [instances]
    wanted = list(INSTANCES) if instances is None else list(instances)
    unknown = [name for name in wanted if name not in INSTANCES]
    if unknown or not wanted:
        problem = f"unknown instance(s) {unknown}" if unknown else "no instance given"
        raise ProfcastError(f"{problem}; expected one or more of {list(INSTANCES)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ProfcastError(f"{out_dir}: output folder is not empty; give a new or empty folder")
    models = [StepModel(w) for w in workloads()]
    written = 0
    for exp_index, exp_name in enumerate(EXPERIMENTS):
        for instance_index, (instance, hw) in enumerate(INSTANCES.items()):
            if instance not in wanted or (instance in ONLY_IN_FIRST_EXPERIMENT and exp_index > 0):
                continue
            folder = out_dir / exp_name / instance
            folder.mkdir(parents=True, exist_ok=True)
            for workload_index, model in enumerate(models):
                # A seed per run keeps each file independent of generation order.
                rng = np.random.default_rng([seed, exp_index, instance_index, workload_index])
                rows, latency = run_rows(model, hw, rng)
                text = _tfstats_csv(rows)
                path = folder / run_file_name(model.workload)
                path.write_text(text, encoding="utf-8", newline="")
                sidecar = path.with_name(path.name[: -len(".csv")] + SIDECAR_SUFFIX)
                sidecar.write_text(json.dumps(latency, sort_keys=True) + "\n", encoding="utf-8", newline="")
                written += 1
    return written
