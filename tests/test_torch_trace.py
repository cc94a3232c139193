"""Reading PyTorch profiler traces: real CPU traces against torch's own totals, real CUDA and ROCm traces."""

import copy
import gzip
import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.torch_trace import DEVICE_CATEGORIES, op_name, read_torch_trace, trace_row
from profcast.ingest.trace_events import load_trace_events
from tests.conftest import REPO

TEST_TRACES = REPO / "tests" / "data" / "torch_traces"
CPU_TRACES = sorted((TEST_TRACES / "runs").rglob("*.pt.trace.json.gz"))
GPU_TRACES = REPO.parent / "shared" / "data" / "torch_traces"
A100 = GPU_TRACES / "a100_alexnet.json.gz"
MI250 = GPU_TRACES / "mi250_minitoy_train.json.gz"
needs_gpu_traces = pytest.mark.skipif(not MI250.exists() or not A100.exists(), reason="../shared GPU traces absent")


def reference_of(trace: Path) -> dict:
    """The key_averages JSON make_traces.py wrote beside ``trace`` (same exp/instance/run)."""
    relative = trace.relative_to(TEST_TRACES / "runs")
    return json.loads(
        (TEST_TRACES / "key_averages" / relative.parent / (trace.name.split(".")[0] + ".json")).read_text()
    )


def busy(row: dict, side: str) -> dict:
    return {k: v for k, v in row.items() if k.startswith(f"{side}_") and k != f"{side}_IDLE"}


def counted_steps(events: list[dict]) -> list[tuple[float, float]]:
    """ProfilerStep windows in which some op or device event starts (computed here, independently)."""
    starts = [
        e["ts"] for e in events if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "cuda_runtime", *DEVICE_CATEGORIES)
    ]
    steps = [
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "user_annotation" and e["name"].startswith("ProfilerStep#")
    ]
    return [(a, b) for a, b in steps if any(a <= ts <= b for ts in starts)]


def test_committed_cpu_traces_exist_and_are_small():
    assert len(CPU_TRACES) == 12
    assert all(path.stat().st_size < 50_000 for path in CPU_TRACES)


@pytest.mark.parametrize("trace", CPU_TRACES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[0]}")
def test_host_self_time_per_op_matches_torch_key_averages(trace):
    reference = reference_of(trace)
    expected = defaultdict(float)  # key_averages keeps 'aten::detach' and 'detach' apart; our columns merge them
    for name, total in reference["self_cpu_time_total_us"].items():
        expected[f"Host_{op_name(name)}"] += total / reference["steps"]

    row = read_torch_trace(trace)

    host_ops = busy(row, "Host")
    assert host_ops, "no Host_ op columns"
    for column, per_step in host_ops.items():
        assert per_step == pytest.approx(expected[column], rel=0.01, abs=0.01), column
    # What torch counts but we do not are the step and optimizer annotations, not ops.
    left_out = {c for c in expected if c not in host_ops}
    assert all("ProfilerStep" in c or c.startswith("Host_Optimizer.") for c in left_out), left_out


@pytest.mark.parametrize(
    "trace", [p for p in CPU_TRACES if p.parent.name == "cpu1t"], ids=lambda p: p.name.split(".")[0]
)
def test_on_one_thread_host_ops_and_idle_add_up_to_the_step(trace):
    events = load_trace_events(trace)
    steps = counted_steps(events)

    row = read_torch_trace(trace)

    mean_step = sum(b - a for a, b in steps) / len(steps)
    assert sum(busy(row, "Host").values()) + row["Host_IDLE"] == pytest.approx(
        mean_step, abs=0.01
    )  # ts near 5e12 µs keeps ~1e-3 µs
    assert row["Host_IDLE"] > 0 and "Device_IDLE" not in row  # a CPU-only run has no device to be idle
    assert row["batch_latency"] == pytest.approx(statistics.median(b - a for a, b in steps) / 1e6)


def test_a_trace_without_steps_is_one_step_spanning_it():
    events = load_trace_events(CPU_TRACES[0])
    without_steps = [e for e in events if not str(e.get("name", "")).startswith("ProfilerStep#")]
    with_steps = trace_row(events)

    row = trace_row(without_steps)

    assert "batch_latency" not in row
    n_steps = len(counted_steps(events))  # the same work, no longer divided per step
    biggest_op = max(busy(with_steps, "Host"), key=with_steps.get)
    assert n_steps > 1 and row[biggest_op] == pytest.approx(n_steps * with_steps[biggest_op])


@needs_gpu_traces
@pytest.mark.parametrize("trace", [A100, MI250], ids=["a100_cuda", "mi250_rocm"])
def test_device_columns_add_up_to_the_device_events_in_the_counted_steps(trace):
    events = load_trace_events(trace)
    device = [e for e in events if e.get("ph") == "X" and e.get("cat") in DEVICE_CATEGORIES]
    steps = counted_steps(events)
    if steps:
        in_steps = [e for e in device if any(a <= e["ts"] <= b for a, b in steps)]
        expected_per_step = sum(e["dur"] for e in in_steps) / len(steps)
    else:
        expected_per_step = sum(e["dur"] for e in device)

    row = read_torch_trace(trace)

    assert sum(busy(row, "Device").values()) == pytest.approx(expected_per_step, rel=0.03)
    assert row["Device_IDLE"] >= 0 and row["Host_IDLE"] >= 0
    # Columns name launching ops, never kernel names with templates and architecture-specific noise.
    assert not [c for c in row if "<" in c or "(" in c or "void " in c]


@needs_gpu_traces
def test_cuda_alexnet_credits_device_time_to_the_launching_ops():
    row = read_torch_trace(A100)

    assert "batch_latency" not in row  # no ProfilerStep annotations
    assert any("convolution" in c for c in busy(row, "Device")), sorted(busy(row, "Device"))
    assert row["Host_cudaLaunchKernel"] > 0


@needs_gpu_traces
def test_rocm_steps_give_the_median_step_and_hip_runtime_columns():
    events = load_trace_events(MI250)
    steps = counted_steps(events)

    row = read_torch_trace(MI250)

    assert row["batch_latency"] == pytest.approx(statistics.median(b - a for a, b in steps) / 1e6, rel=0.03)
    assert row["Host_hipLaunchKernel"] > 0 and row["Device_addmm"] > 0
    # One stream, one device: busy plus idle is the step.
    assert sum(busy(row, "Device").values()) + row["Device_IDLE"] == pytest.approx(row["batch_latency"] * 1e6, rel=0.01)


@needs_gpu_traces
def test_a_device_event_whose_launch_is_unknown_is_still_counted():
    events = load_trace_events(MI250)
    orphaned = copy.deepcopy(events)
    kernel = next(e for e in orphaned if e.get("cat") == "kernel")
    del kernel["args"]["correlation"]

    before, after = trace_row(events), trace_row(orphaned)

    assert after["Device_unattributed_kernel"] == pytest.approx(kernel["dur"] / len(counted_steps(events)))
    assert sum(busy(after, "Device").values()) == pytest.approx(sum(busy(before, "Device").values()))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not valid JSON"),
        (json.dumps({"schemaVersion": 1}).encode(), 'without a "traceEvents" list'),
        (json.dumps({"traceEvents": []}).encode(), "no cpu_op, runtime or device events"),
        ("{}".encode("utf-16"), "not UTF-8"),
    ],
)
def test_bad_traces_get_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "run.json"
    path.write_bytes(content)

    with pytest.raises(ProfcastError, match=message) as caught:
        read_torch_trace(path)

    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_truncated_gzip_trace_is_named_as_such(tmp_path):
    whole = CPU_TRACES[0].read_bytes()
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(ProfcastError, match="truncated or corrupt gzip"):
        read_torch_trace(path)
    assert gzip.decompress(whole)  # the original is whole


def lagging_gpu_trace() -> list[dict]:
    """Two 100 µs steps whose kernels run after their step's window: the GPU lags the CPU.

    Launched in step 1 (ts 0-100): an mm kernel running at 150-190 (inside step 2's window) and a
    memcpy at 195-205 (straddling the end). Launched in step 2 (100-200): an mm kernel at 210-250,
    after every window. Launched before profiling's first step (ts -50): a kernel running at 30-33,
    inside step 1, that no step launched. A kernel with no runtime launch at all (5-8) falls back
    to the window its start falls in.
    """

    def op(name, ts, dur, cat="cpu_op", **args):
        return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1, "args": args}

    def work(name, ts, dur, correlation, cat="kernel"):
        event = {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 0, "tid": 7, "args": {}}
        if correlation is not None:
            event["args"]["correlation"] = correlation
        return event

    return [
        op("ProfilerStep#1", 0, 100, cat="user_annotation"),
        op("ProfilerStep#2", 100, 100, cat="user_annotation"),
        op("aten::mm", -60, 20),
        op("cudaLaunchKernel", -50, 5, cat="cuda_runtime", correlation=4),
        op("aten::mm", 10, 30),
        op("cudaLaunchKernel", 20, 5, cat="cuda_runtime", correlation=1),
        op("aten::copy_", 50, 20),
        op("cudaMemcpyAsync", 55, 5, cat="cuda_runtime", correlation=3),
        op("aten::mm", 110, 30),
        op("cudaLaunchKernel", 120, 5, cat="cuda_runtime", correlation=2),
        work("volta_sgemm_128x64_nn", 30, 3, 4),
        work("volta_sgemm_128x64_nn", 150, 40, 1),
        work("Memcpy HtoD", 195, 10, 3, cat="gpu_memcpy"),
        work("volta_sgemm_128x64_nn", 210, 40, 2),
        work("orphan_kernel", 5, 3, None),
    ]


def test_device_work_is_credited_to_the_step_that_launched_it_when_the_gpu_lags():
    row = trace_row(lagging_gpu_trace())

    # Every kernel the two steps launched counts once, wherever the GPU ran it (per step: / 2);
    # the kernel launched before the first step does not, though it ran inside step 1's window.
    assert row["Device_mm"] == pytest.approx((40 + 40) / 2)
    assert row["Device_copy_"] == pytest.approx(10 / 2)
    assert row["Device_unattributed_kernel"] == pytest.approx(3 / 2)  # no launch: its own start's window
    assert sum(busy(row, "Device").values()) == pytest.approx((40 + 10 + 40 + 3) / 2)
    assert row["batch_latency"] == pytest.approx(100e-6)
