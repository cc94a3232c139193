"""Run a reference suite on this machine into one instance's folder: resumable, budgeted, never losing a finished workload.

Each workload's trace is written whole (``steps.record_trace``) and the manifest rewritten after it,
so a second run skips what is done, an out-of-memory workload is recorded as not fitting and the
suite goes on, an error in one workload is recorded and the next one runs, and a stop (Ctrl-C,
SIGTERM, the time budget) leaves the folder as a later run can continue it. A full disk stops the
suite in one line with the workload it hit put back to ``pending`` (its trace removed), never
``running``; one collector at a time holds the ``--out`` folder (``out_folder``).
"""

from __future__ import annotations

import logging
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from profcast.collect.manifest import (
    DONE,
    FAILED,
    FINISHED_STATUSES,
    OUT_OF_MEMORY,
    PENDING,
    RUNNING,
    Manifest,
    ManifestNotWritten,
)
from profcast.collect.out_folder import checked_out_folder, collector_lock, free_bytes, is_disk_full
from profcast.collect.quality import SPREAD_LIMIT, judge
from profcast.collect.steps import trace_path
from profcast.collect.suites import Workload
from profcast.collect.workload import OutOfMemory, first_line, run_workload
from profcast.errors import ProfcastError
from profcast.ingest.torch_trace import read_torch_trace
from profcast.progress import duration, logging_beside_bars, track
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY
from profcast.stops import Terminated, signals_seen

log = logging.getLogger(__name__)


@dataclass
class SuiteRun:
    """What one call ran: workload names by outcome, whether the budget stopped it, and the manifest."""

    manifest: Manifest
    ran: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    budget_reached: bool = False

    def add(self, status: str, name: str) -> None:
        self.ran.setdefault(status, []).append(name)


def run_suite(
    suite: str,
    workloads: list[Workload],
    out_dir,
    instance: str,
    device: str,
    machine: dict,
    exp: str = "suite",
    budget_minutes: float | None = None,
    retry_failed: bool = False,
    clock=time.monotonic,
    run=run_workload,
    wait: bool = False,
) -> SuiteRun:
    """Run the workloads not finished yet in ``<out_dir>/<exp>/<instance>/``, in order, within the budget.

    ``run(workload, path, device)`` runs one workload (tests pass their own); ``clock`` measures the budget.
    Another collector running into ``out_dir`` is refused in one line, or waited for with ``wait``.
    """
    trace_path(out_dir, exp, instance, "dataset", "model", "sgd", 1)  # refuses an exp or instance a path cannot hold
    with collector_lock(checked_out_folder(out_dir), wait):
        return _run_locked(
            suite, workloads, out_dir, instance, device, machine, exp, budget_minutes, retry_failed, clock, run
        )


def _run_locked(suite, workloads, out_dir, instance, device, machine, exp, budget_minutes, retry_failed, clock, run):
    folder = Path(out_dir) / exp / instance
    manifest = Manifest.open(folder, suite, instance, machine)
    result = SuiteRun(manifest)
    todo = []
    for workload in workloads:
        status = manifest.status(workload.name)
        path = _trace_of(out_dir, exp, instance, workload)
        if status == DONE and not path.is_file():  # the trace was deleted since: run it again
            status = PENDING
        if status in FINISHED_STATUSES or (status == FAILED and not retry_failed):
            result.skipped.append(workload.name)
            continue
        manifest.workloads.setdefault(workload.name, {"status": PENDING})
        todo.append(workload)
    manifest.content["suite"] = suite
    manifest.write()
    if result.skipped:
        log.info("skipping %d workloads already run (%s)", len(result.skipped), manifest.path)
    started, budget = clock(), None if budget_minutes is None else budget_minutes * 60
    with logging_beside_bars(), _stopped_as_interrupted(manifest):
        for workload in track(todo, f"suite {suite} on {instance}"):
            if budget is not None and clock() - started >= budget:
                result.budget_reached = True
                log.warning(
                    "time budget of %s reached: %d workloads left pending; run the same command again to go on",
                    duration(budget),
                    len(todo) - sum(map(len, result.ran.values())),
                )
                break
            result.add(
                _run_one(workload, manifest, _trace_of(out_dir, exp, instance, workload), device, run, clock),
                workload.name,
            )
    manifest.content["stopped"] = "budget" if result.budget_reached else "finished"
    manifest.write()
    return result


def _run_one(workload: Workload, manifest: Manifest, path: Path, device: str, run, clock) -> str:
    """Run one workload and record its outcome; a stop puts it back to pending and goes on up."""
    manifest.record(workload.name, status=RUNNING, error=None)
    started, stops_before = clock(), len(signals_seen())
    try:
        quality = judge(run(workload, path, device))
        # One more try when the steps spread: a burst of other work may have passed. A busy machine alone
        # is flagged at once: its 1-minute load average would not have moved in the seconds a retry takes.
        if quality.get("noisy") and quality["step_spread"] > SPREAD_LIMIT:
            log.debug("%s: noisy measurement (%s); measuring it once more", workload.name, quality["noise"])
            quality = {**judge(run(workload, path, device)), "measured": 2}
        row = read_torch_trace(path)
    except OutOfMemory as error:
        path.unlink(missing_ok=True)
        manifest.record(workload.name, status=OUT_OF_MEMORY, seconds=clock() - started, error=str(error))
        log.warning("%s: out of memory on %s (recorded: this batch does not fit)", workload.name, device)
        return OUT_OF_MEMORY
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: not the workload's fault, a later run does it
        path.unlink(missing_ok=True)
        manifest.record(workload.name, status=PENDING, error=None)
        raise
    except ManifestNotWritten as error:
        _stop_for_room(workload, manifest, path, error)
    except Exception as error:  # one workload's bug or a framework error must not lose the others
        path.unlink(missing_ok=True)
        if len(signals_seen()) > stops_before:  # a stop that a library turned into its own error is still a stop
            manifest.record(workload.name, status=PENDING, error=None)
            raise (Terminated() if signals_seen()[-1] == signal.SIGTERM else KeyboardInterrupt()) from None
        if is_disk_full(error):
            _stop_for_room(workload, manifest, path, error)
        message = f"{type(error).__name__}: {first_line(error)}"
        manifest.record(workload.name, status=FAILED, seconds=clock() - started, error=message)
        log.warning("%s failed: %s", workload.name, message)
        return FAILED
    try:
        manifest.record(
            workload.name,
            status=DONE,
            seconds=clock() - started,
            trace=str(path.relative_to(manifest.path.parent)),
            batch_latency=row.get(BATCH_LATENCY),
            peak_memory_bytes=row.get(PEAK_MEMORY),
            **quality,
        )
    except ManifestNotWritten as error:  # the trace is whole, but a manifest that cannot say so must not keep it
        _stop_for_room(workload, manifest, path, error)
    if quality.get("noisy"):  # one line per workload would flood a busy machine's run: the command sums them up
        log.debug("%s: noisy measurement, flagged in the manifest (%s)", workload.name, quality["noise"])
    return DONE


def _stop_for_room(workload: Workload, manifest: Manifest, path: Path, error: BaseException):
    """A write failed (a full disk, above all): put the workload back to pending and stop the suite in one line.

    Its trace goes first, which frees room for the manifest's own write; a manifest that still cannot be
    written keeps its last state, and a workload found ``running`` there is marked failed by the next run.
    """
    path.unlink(missing_ok=True)
    manifest.workloads[workload.name].update(status=PENDING, error=None)
    try:
        manifest.write()
        kept = "the manifest is consistent"
    except ManifestNotWritten:
        kept = "the manifest could not be written either"
    folder = manifest.path.parent
    reason = (
        str(error).split(": ", 1)[-1] if isinstance(error, ManifestNotWritten) else f"{type(error).__name__}: {error}"
    )
    raise ProfcastError(
        f"{folder}: stopped at {workload.name}, put back to pending ({reason}; {free_bytes(folder):,} bytes free); "
        f"{kept}: make room and run the same command again to go on"
    ) from None


@contextmanager
def _stopped_as_interrupted(manifest: Manifest):
    """A stop between workloads (or inside one, after it was put back to pending) leaves ``stopped: interrupted``."""
    try:
        yield
    except KeyboardInterrupt:
        manifest.content["stopped"] = "interrupted"
        manifest.write()
        raise


def _trace_of(out_dir, exp: str, instance: str, workload: Workload) -> Path:
    return trace_path(
        out_dir, exp, instance, workload.dataset, workload.network.name, workload.optimizer, workload.batchsize
    )


def check_device(device: str, available: list[str]) -> str:
    """The device to run on: ``auto`` picks the first available; an absent one is a one-line error."""
    if device == "auto":
        return available[0]
    if device not in available:
        raise ProfcastError(f"--device {device}: not available on this machine; available: {', '.join(available)}")
    return device
