"""Profile one training step function with torch.profiler and return profcast's profile row.

    row = profile_steps(train_step, steps=5, out_dir="profiles", instance="g4dn.xlarge",
                        model="resnet18", dataset="cifar10", optimizer="sgd", batchsize=64)

writes ``profiles/exp1/g4dn.xlarge/cifar10-resnet18-sgd-64.pt.trace.json.gz`` (the layout
``profcast convert`` and ``data=file`` folders read) and returns that trace's row.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from profcast.errors import ProfcastError
from profcast.ingest.torch_trace import read_torch_trace
from profcast.ingest.trace_memory import RESIDENT_BYTES_KEY

log = logging.getLogger(__name__)

TRACE_SUFFIX = ".pt.trace.json.gz"
# Kineto (torch's profiler backend) logs two "USDT: ... profiler_start/stop" lines to stderr per trace,
# at its highest level (5, above ERROR); a minimum level of 6 silences its own log, read at the first
# profile. Set KINETO_LOG_LEVEL yourself (e.g. 0) to see it again.
KINETO_LOG_LEVEL = ("KINETO_LOG_LEVEL", "6")


def trace_path(out_dir, exp: str, instance: str, dataset: str, model: str, optimizer: str, batchsize: int) -> Path:
    """``<out_dir>/<exp>/<instance>/<dataset>-<model>-<optimizer>-<batchsize>.pt.trace.json.gz``."""
    # The reader splits the file name on '-', and skips hidden files and folders.
    for name, value in (
        ("exp", exp),
        ("instance", instance),
        ("dataset", dataset),
        ("model", model),
        ("optimizer", optimizer),
    ):
        text = str(value)
        in_file_name = name in ("dataset", "model", "optimizer")
        if not text or "/" in text or text.startswith(".") or (in_file_name and "-" in text):
            raise ProfcastError(
                f"{name}={value!r} cannot be part of a trace path; use a non-empty name "
                "without '/' or a leading '.', and without '-' for dataset, model and optimizer"
            )
    if not isinstance(batchsize, int) or isinstance(batchsize, bool) or batchsize <= 0:
        raise ProfcastError(f"batchsize={batchsize!r}; expected a positive integer")
    return Path(out_dir) / exp / instance / f"{dataset}-{model}-{optimizer}-{batchsize}{TRACE_SUFFIX}"


def record_trace(
    step_fn: Callable[[], object],
    path,
    steps: int = 5,
    warmup: int = 1,
    wait: int = 1,
    *,
    profile_memory: bool = False,
    resident_bytes: int | None = None,
):
    """Run ``step_fn`` ``wait + warmup + steps`` times under torch.profiler, recording the last ``steps``
    (each inside a ``ProfilerStep#N`` annotation), write the trace to ``path``; return the profiler.

    ``profile_memory`` records the allocator's ``[memory]`` events (the trace's peak memory, see
    ``profcast.ingest.trace_memory``); ``resident_bytes``, the bytes the step keeps between steps
    (parameters, gradients, optimizer state, inputs), goes into the trace's metadata because the
    CPU's memory events count only what was allocated after profiling began.
    """
    torch = import_torch()
    if steps < 1 or warmup < 0 or wait < 0:
        raise ProfcastError(f"steps={steps}, warmup={warmup}, wait={wait}; expected steps >= 1 and warmup, wait >= 0")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():  # ROCm builds answer here too
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    partial = path.with_name(f".{path.name}.partial{TRACE_SUFFIX}")  # export picks gzip from the suffix

    def write_trace(prof):
        prof.export_chrome_trace(str(partial))
        os.replace(partial, path)  # readers never see a half-written trace

    schedule = torch.profiler.schedule(wait=wait, warmup=warmup, active=steps, repeat=1)
    try:
        # record_shapes: per-call records (ingest/trace_calls) need each operator's input shapes
        with torch.profiler.profile(
            activities=activities,
            schedule=schedule,
            on_trace_ready=write_trace,
            profile_memory=profile_memory,
            record_shapes=True,
        ) as prof:
            for index in range(wait + warmup + steps):
                if index == wait and resident_bytes is not None:  # the trace is open from warmup on, not before
                    prof.add_metadata_json(RESIDENT_BYTES_KEY, str(int(resident_bytes)))
                step_fn()
                prof.step()
    finally:
        partial.unlink(missing_ok=True)
    log.info("wrote %s (%d profiled steps)", path, steps)
    return prof


def profile_steps(
    step_fn: Callable[[], object],
    steps: int = 5,
    warmup: int = 1,
    out_dir="profiles",
    *,
    instance: str,
    model: str,
    dataset: str,
    batchsize: int,
    optimizer: str = "sgd",
    exp: str = "exp1",
    wait: int = 1,
    profile_memory: bool = False,
) -> dict:
    """Profile ``steps`` training steps after ``wait + warmup`` unrecorded ones, write the trace in
    profcast's layout under ``out_dir`` and return the run's row (keys, op times per step, batch_latency;
    with ``profile_memory`` the peak memory the profiler saw, on the CPU without the resident bytes)."""
    path = trace_path(out_dir, exp, instance, dataset, model, optimizer, batchsize)
    record_trace(step_fn, path, steps=steps, warmup=warmup, wait=wait, profile_memory=profile_memory)
    keys = {
        "exp_name": exp,
        "instance_name": instance,
        "dataset": dataset,
        "model": model,
        "optimizer": optimizer,
        "batchsize": batchsize,
    }
    return {**keys, **read_torch_trace(path)}


def import_torch():
    """torch with its profiler (Kineto's own stderr log silenced), or a one-line error saying how to install it."""
    os.environ.setdefault(*KINETO_LOG_LEVEL)
    try:
        import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import; missing, it is told in one line
        import torch.profiler  # noqa: F401, PLC0415  torch is optional (the torch extra) and slow to import; missing, it is told in one line
    except ImportError:
        raise ProfcastError('profiling needs PyTorch, which is not installed; run: pip install -e ".[torch]"') from None
    return torch
