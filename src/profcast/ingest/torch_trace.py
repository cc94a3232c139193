"""Read a PyTorch profiler (Kineto) Chrome trace into one profile row: per-step op times in microseconds.

The trace's ``traceEvents`` hold complete events (``ph: "X"``, ``ts``/``dur`` in µs). We use:
  ``cpu_op``: an operator on a host thread (``aten::conv2d``); ops nest by time on one thread.
  ``cuda_runtime``/``cuda_driver``: a runtime call (``cudaLaunchKernel``, ROCm ``hipLaunchKernel``),
      its ``args.correlation`` shared with the device work it launched.
  ``kernel``, ``gpu_memcpy``, ``gpu_memset``: device work.
  ``user_annotation`` ``ProfilerStep#N``: one training step (written by ``prof.step()``).
The row: ``Host_<op>`` self time of each op and runtime call, ``Device_<op>`` device time credited to
the op that launched it (kernel names change with the GPU architecture, launching ops do not) and
to the step whose window holds the launch (the GPU may run it after the window closed),
``Host_IDLE``/``Device_IDLE`` step time when that side runs nothing, all divided by the number of
steps, ``batch_latency``, the median step in seconds, and, in a trace recorded with memory profiling,
``peak_memory_bytes`` (``ingest/trace_memory``). docs/profile-formats.md has the rules.
"""

from __future__ import annotations

import bisect
import logging
import re
import statistics
from collections import defaultdict
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.ingest.trace_events import iter_trace_events
from profcast.ingest.trace_memory import PEAK_MEMORY, RESIDENT_BYTES_KEY, MemorySamples

log = logging.getLogger(__name__)

HOST_OP = "cpu_op"
RUNTIME_CATEGORIES = ("cuda_runtime", "cuda_driver")
DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
STEP_NAME = re.compile(r"ProfilerStep#\d+$")
# Framework namespaces that say nothing about the op; dropped so names match across versions.
DROPPED_PREFIXES = ("aten::",)
# Kineto writes ts with nanosecond decimals; sums of floats may miss containment by a hair.
NESTING_SLACK_US = 1e-3


def read_torch_trace(path) -> dict[str, float]:
    """One trace file (``.json`` or ``.json.gz``) -> ``{column: µs per step}`` plus ``batch_latency`` (s).

    The file is read as a stream: memory grows with the events kept (complete op, runtime, device
    and step events, a few fields each), not with the file; past ``limits.max_input_bytes()`` of
    (decompressed) text the read stops with a one-line error.
    """
    path = Path(path)
    memory, metadata = MemorySamples(), {}
    kept = list(_kept_events(memory.watch(iter_trace_events(path, metadata))))
    return _row_of_kept(kept, source=str(path), memory=memory, resident_bytes=metadata.get(RESIDENT_BYTES_KEY))


def op_name(name: str) -> str:
    """Column part for a profiler op name: ``aten::conv2d`` -> ``conv2d``."""
    for prefix in DROPPED_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class TraceEvent:
    """The fields of one complete event that the row needs; slots keep millions of them small."""

    __slots__ = ("name", "cat", "ts", "dur", "thread", "correlation")

    def __init__(self, name: str, cat, ts: float, dur: float, thread, correlation):
        self.name, self.cat, self.ts, self.dur, self.thread, self.correlation = name, cat, ts, dur, thread, correlation

    @property
    def end(self) -> float:
        return self.ts + self.dur


KEPT_CATEGORIES = frozenset((HOST_OP, *RUNTIME_CATEGORIES, *DEVICE_CATEGORIES, "user_annotation"))


def _kept_events(events):
    """The complete events of the kept categories as TraceEvents; op names shared, not one string per event."""
    names: dict[str, str] = {}
    threads: dict = {}  # one (pid, tid) tuple per thread, not per event
    for event in events:
        if not (
            isinstance(event, dict)
            and event.get("ph") == "X"
            and isinstance(event.get("name"), str)
            and _has_time(event)
        ):
            continue
        cat = event.get("cat")
        if cat not in KEPT_CATEGORIES:
            continue
        name = names.setdefault(event["name"], event["name"])
        if cat == "user_annotation" and not STEP_NAME.match(name):
            continue
        thread = (event.get("pid"), event.get("tid"))
        thread = threads.setdefault(thread, thread) if _hashable(thread) else None
        yield TraceEvent(name, cat, float(event["ts"]), float(event["dur"]), thread, _correlation(event))


def trace_row(events: list[dict], source: str = "trace") -> dict[str, float]:
    """Per-step op times of one trace's events (see the module docstring)."""
    return _row_of_kept(list(_kept_events(events)), source)


def _row_of_kept(
    complete: list[TraceEvent], source: str, memory: MemorySamples | None = None, resident_bytes=None
) -> dict[str, float]:
    host = [e for e in complete if e.cat == HOST_OP or e.cat in RUNTIME_CATEGORIES]
    device = [e for e in complete if e.cat in DEVICE_CATEGORIES]
    if not host and not device:
        raise ProfcastError(f"{source}: trace has no cpu_op, runtime or device events; nothing was profiled")
    steps = _steps_with_work(_unique_steps(complete), host + device)
    if steps:
        windows = sorted((e.ts, e.end) for e in steps)
    else:  # no prof.step() annotations: the whole trace is one step
        windows = [(min(e.ts for e in host + device), max(e.end for e in host + device))]
    n_steps = len(windows)
    in_steps = _window_test(windows)

    self_time, launching_op = _host_self_times(host)
    totals: dict[str, float] = defaultdict(float)
    for event in host:
        if in_steps(event.ts):
            totals[f"Host_{op_name(event.name)}"] += self_time[id(event)]
    launched_at = _launch_times(host)
    for event in device:
        # Device work belongs to the step that launched it: when the GPU lags the CPU, a kernel
        # starts after its step's window has closed (or inside the next one). A kernel with no
        # runtime launch in the trace (its launch fell before profiling began, or the runtime
        # events were not recorded) falls back to the window its own start falls in.
        credited_at = launched_at.get(event.correlation, event.ts)
        if in_steps(credited_at):
            op = launching_op.get(event.correlation)
            column = f"Device_{op_name(op)}" if op else f"Device_unattributed_{event.cat}"
            totals[column] += event.dur

    step_time = sum(end - start for start, end in windows)
    # IDLE stays a measure of the windows' wall time (what each side did while the steps ran), so
    # with a lagging GPU the Device_ columns may add up to more than the step time.
    totals["Host_IDLE"] = step_time - _covered_time(host, windows)
    if device:  # a CPU-only trace has no device to be idle
        totals["Device_IDLE"] = step_time - _covered_time(device, windows)
    row = {column: value / n_steps for column, value in sorted(totals.items())}
    if steps:
        row["batch_latency"] = statistics.median(end - start for start, end in windows) / 1e6
    peak = memory.peak(in_steps, resident_bytes) if memory is not None else None
    if peak is not None:
        row[PEAK_MEMORY] = peak
    log.debug("%s: %d step(s), %d host and %d device events", source, n_steps, len(host), len(device))
    return row


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:  # a pid or tid given as a list or object: one thread for all such events
        return False
    return True


def _has_time(event: dict) -> bool:
    ts, dur = event.get("ts"), event.get("dur")
    return isinstance(ts, (int, float)) and isinstance(dur, (int, float)) and dur >= 0


def _unique_steps(events: list[dict]) -> list[dict]:
    """``ProfilerStep#N`` annotations, one per step (a step seen twice is counted once)."""
    by_name = {}
    for event in events:
        if event.cat == "user_annotation" and STEP_NAME.match(event.name):
            by_name.setdefault(event.name, event)
    return list(by_name.values())


def _steps_with_work(steps: list[dict], events: list[dict]) -> list[dict]:
    """Steps in which some op or device event starts; drops the empty stub step that opens
    when the profiler is stopped right after ``prof.step()`` (it would halve the median)."""
    starts = sorted(e.ts for e in events)
    kept = []
    for step in steps:
        begin, end = step.ts, step.end
        first = bisect.bisect_left(starts, begin)
        if first < len(starts) and starts[first] <= end:
            kept.append(step)
    return kept


def _window_test(windows: list[tuple[float, float]]):
    """A function telling whether a timestamp lies in one of the (sorted, disjoint) step windows."""
    starts = [start for start, _ in windows]

    def inside(ts: float) -> bool:
        i = bisect.bisect_right(starts, ts) - 1
        return i >= 0 and ts <= windows[i][1]

    return inside


def _launch_times(host: list[TraceEvent]) -> dict:
    """Start time of each runtime call (``cudaLaunchKernel``, ``cudaMemcpyAsync``...) by its correlation id."""
    return {e.correlation: e.ts for e in host if e.cat in RUNTIME_CATEGORIES and e.correlation is not None}


def _correlation(event: dict):
    args = event.get("args")
    correlation = args.get("correlation") if isinstance(args, dict) else None
    return correlation if isinstance(correlation, (int, float, str)) else None  # a key of a dict: never a list


def _host_self_times(host: list[TraceEvent]) -> tuple[dict[int, float], dict]:
    """Each host event's self time (minus its children on the same thread) and, per runtime
    correlation id, the name of the innermost ``cpu_op`` around that runtime call."""
    by_thread = defaultdict(list)
    for event in host:
        by_thread[event.thread].append(event)
    self_time: dict[int, float] = {}
    launching_op: dict = {}
    for events in by_thread.values():
        events.sort(key=lambda e: (e.ts, -e.dur))
        stack: list[TraceEvent] = []
        for event in events:
            start, duration = event.ts, event.dur
            while stack and start + duration > stack[-1].end + NESTING_SLACK_US:
                stack.pop()  # the event ends after the top of the stack: not its child
            if stack:
                self_time[id(stack[-1])] -= duration
            self_time[id(event)] = duration
            if event.cat in RUNTIME_CATEGORIES and event.correlation is not None:
                parent = next((e for e in reversed(stack) if e.cat == HOST_OP), None)
                if parent is not None:
                    launching_op[event.correlation] = parent.name
            stack.append(event)
    return self_time, launching_op


def _covered_time(events: list[TraceEvent], windows: list[tuple[float, float]]) -> float:
    """Time inside the step windows covered by at least one event (union of intervals)."""
    intervals = sorted((e.ts, e.end) for e in events)
    covered, window_index = 0.0, 0
    merged: list[list[float]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        while window_index < len(windows) and windows[window_index][1] <= start:
            window_index += 1
        i = window_index
        while i < len(windows) and windows[i][0] < end:
            covered += max(0.0, min(end, windows[i][1]) - max(start, windows[i][0]))
            i += 1
    return covered
