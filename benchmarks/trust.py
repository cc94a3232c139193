"""Input-trust benchmark: memory and time stay bounded whatever the input's size (docs/reliability.md).

    python -m benchmarks.trust [--bomb-gib 3] [--trace-gib 1] [--request-mb 28] [--out benchmarks/results/trust.md]

In a temporary folder (deleted after) it writes a gzip bomb (a trace whose text is mostly
whitespace, --bomb-gib GiB unpacked) and a real-shaped Kineto trace of --trace-gib GiB (cpu_op,
cuda_runtime, kernel and python_function events with Kineto's args), reads each in a child process
(``profcast.ingest.profile_files.read_profile_file``, as convert does) and reports the child's peak
RSS (``resource.getrusage(RUSAGE_CHILDREN)``) and wall time. Then it trains a small job model, serves
it with ``mlflow models serve`` and sends one --request-mb MB request: the time to its 400 and the
server's RSS (its process group, from /proc) before and after. Bars: peak RSS < 2 GiB for the files;
refusal < 1 s with the server within 500 MB of idle.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
READ_CHILD = """
import sys, time
from profcast.errors import ProfcastError
from profcast.ingest.profile_files import read_profile_file
started = time.monotonic()
try:
    row = read_profile_file(sys.argv[1], keys={"exp_name": "e", "instance_name": "i"})
    print(f"read: {len(row)} columns", end="")
except ProfcastError as error:
    print(f"stopped: {str(error).split(': ', 1)[1][:90]}", end="")
print(f"|{time.monotonic() - started:.1f}")
"""


def write_bomb(path: Path, unpacked: int) -> None:
    chunk = b" " * (16 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'{"traceEvents": [')
        for _ in range(unpacked // len(chunk)):
            out.write(chunk)
        out.write(b"]}")


def write_real_shaped_trace(path: Path, size: int) -> int:
    """A Kineto-like trace of about ``size`` bytes: steps of nested cpu_ops launching kernels; returns the event count."""
    events, written, ts, correlation, step = 0, 0, 0.0, 0, 0
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "NVIDIA A100"}], "traceEvents": [\n')
        while written < size:
            step += 1
            step_start = ts
            lines = []
            for op in range(200):
                correlation += 1
                name = f"aten::op{op % 40}"
                lines.append(
                    {
                        "ph": "X",
                        "cat": "python_function",
                        "name": "torch/nn/modules/module.py(1736): _call_impl",
                        "pid": 1,
                        "tid": 1,
                        "ts": ts,
                        "dur": 30.0,
                        "args": {"Python parent id": op, "Python id": op + 1, "Python thread": 0},
                    }
                )
                lines.append(
                    {
                        "ph": "X",
                        "cat": "cpu_op",
                        "name": name,
                        "pid": 1,
                        "tid": 1,
                        "ts": ts + 1,
                        "dur": 20.0,
                        "args": {
                            "External id": correlation,
                            "Record function id": 0,
                            "Sequence number": correlation,
                            "Fwd thread id": 0,
                            "Concrete Inputs": ["", ""],
                            "Input type": ["float", "float"],
                            "Input Strides": [[1024, 1], [1024, 1]],
                            "Input Dims": [[64, 1024], [64, 1024]],
                        },
                    }
                )
                lines.append(
                    {
                        "ph": "X",
                        "cat": "cuda_runtime",
                        "name": "cudaLaunchKernel",
                        "pid": 1,
                        "tid": 1,
                        "ts": ts + 5,
                        "dur": 4.0,
                        "args": {"External id": correlation, "cbid": 211, "correlation": correlation},
                    }
                )
                lines.append(
                    {
                        "ph": "X",
                        "cat": "kernel",
                        "name": "void at::native::vectorized_elementwise_kernel<4>(...)",
                        "pid": 0,
                        "tid": 7,
                        "ts": ts + 10,
                        "dur": 8.0,
                        "args": {
                            "External id": correlation,
                            "queued": 0,
                            "device": 0,
                            "context": 1,
                            "stream": 7,
                            "correlation": correlation,
                            "registers per thread": 16,
                            "shared memory": 0,
                            "blocks per SM": 0.5,
                            "warps per SM": 2.0,
                            "grid": [128, 1, 1],
                            "block": [128, 1, 1],
                            "est. achieved occupancy %": 3,
                        },
                    }
                )
                ts += 32.0
            lines.append(
                {
                    "ph": "X",
                    "cat": "user_annotation",
                    "name": f"ProfilerStep#{step}",
                    "pid": 1,
                    "tid": 1,
                    "ts": step_start,
                    "dur": ts - step_start,
                }
            )
            text = ",\n".join(json.dumps(line) for line in lines)
            out.write(("" if events == 0 else ",\n") + text)
            written += len(text)
            events += len(lines)
        out.write("\n]}\n")
    return events


def read_in_child(path: Path, extra_env: dict | None = None) -> tuple[str, float, float]:
    """(outcome, seconds, peak RSS in GiB) of reading ``path`` in a fresh child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [sys.executable, "-c", READ_CHILD, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(extra_env or {})},
    )
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far
    if result.returncode != 0:
        return f"crashed: {result.stderr.strip().splitlines()[-1][:90]}", float("nan"), peak_kib / 1024**2
    outcome, seconds = result.stdout.strip().rsplit("|", 1)
    return outcome, float(seconds), max(peak_kib, before if peak_kib == before else peak_kib) / 1024**2


def group_rss_mb(pid: int) -> float:
    """Resident memory of every process in ``pid``'s process group (the CLI and its uvicorn worker), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def serve_and_send(folder: Path, request_mb: float) -> dict:
    """Train a ratio job, serve it, and send one oversized request: timings and the server's memory."""
    import mlflow

    from profcast.hosting.model_server import ModelServer

    store = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    command = [
        sys.executable,
        "-m",
        "profcast.train",
        "anchor=g3s.xlarge",
        "regressor=ratio",
        "target=p3.2xlarge",
        "log_plots=false",
    ]
    trained = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    if trained.returncode != 0:
        raise SystemExit(f"training failed:\n{trained.stderr[-2000:]}")
    mlflow.set_tracking_uri(store)
    runs = mlflow.search_runs(experiment_names=["profcast"], filter_string="tags.`profcast.job_model` = 'profcast'")
    model_uri = f"runs:/{runs.iloc[0].run_id}/profcast"
    row = {"Host_IDLE": 123.456, "Device_Conv2D": 4567.891, "Device_Relu": 12.5, "batch_latency": 0.0123}
    rows = int(request_mb * 1e6 / (len(json.dumps(row)) + 2))
    body = json.dumps({"dataframe_records": [row] * rows}).encode()
    with ModelServer(model_uri, folder / "server.log", env={"MLFLOW_TRACKING_URI": store}) as server:
        time.sleep(2)
        idle = group_rss_mb(server.process.pid)
        request = urllib.request.Request(
            f"{server.url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        seconds = time.monotonic() - started
        after = group_rss_mb(server.process.pid)
    return {
        "rows": rows,
        "bytes": len(body),
        "status": status,
        "seconds": seconds,
        "idle_mb": idle,
        "after_mb": after,
        "message": json.loads(text).get("message", "")[:110] if status != 200 else "answered",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trust", description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-gib", type=float, default=3.0)
    parser.add_argument("--trace-gib", type=float, default=1.0)
    parser.add_argument("--request-mb", type=float, default=28.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "trust.md")
    args = parser.parse_args(argv)
    lines = [
        "# Input trust: bounded memory and time",
        "",
        f"`python -m benchmarks.trust --bomb-gib {args.bomb_gib:g} --trace-gib {args.trace_gib:g} --request-mb {args.request_mb:g}`"
        f" ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared with other jobs; default limits)",
        "",
        "| input | on disk | outcome | time (s) | peak RSS (GiB) | bar |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="profcast-trust-") as temp:
        folder = Path(temp)
        bomb = folder / "bomb.pt.trace.json.gz"
        write_bomb(bomb, int(args.bomb_gib * GIB))
        outcome, seconds, peak = read_in_child(bomb)
        lines.append(
            f"| gzip bomb, {args.bomb_gib:g} GiB unpacked | {bomb.stat().st_size / 1e6:.1f} MB | {outcome} | {seconds:.0f} | "
            f"{peak:.2f} | {'met' if peak < 2 else 'NOT met'} (< 2 GiB) |"
        )
        bomb.unlink()
        print(lines[-1], flush=True)
        trace = folder / "exp1" / "a100" / "imagenet-resnet-sgd-64.pt.trace.json"
        trace.parent.mkdir(parents=True)
        n_events = write_real_shaped_trace(trace, int(args.trace_gib * GIB))
        outcome, seconds, peak = read_in_child(trace)
        lines.append(
            f"| real-shaped trace, {n_events:,} events | {trace.stat().st_size / GIB:.2f} GiB | {outcome} | {seconds:.0f} | "
            f"{peak:.2f} | {'met' if peak < 2 else 'NOT met'} (< 2 GiB) |"
        )
        trace.unlink()
        print(lines[-1], flush=True)
        served = serve_and_send(folder, args.request_mb)
    growth = served["after_mb"] - served["idle_mb"]
    lines += [
        "",
        "Peak RSS is the largest child process so far (the bomb is read first, so the trace's row is an upper bound of its own).",
        "",
        "| request | status | time to answer (s) | server RSS idle -> after (MB) | bar |",
        "| --- | --- | --- | --- | --- |",
        f"| {served['rows']:,} rows, {served['bytes'] / 1e6:.1f} MB JSON | {served['status']}: {served['message']} | "
        f"{served['seconds']:.2f} | {served['idle_mb']:.0f} -> {served['after_mb']:.0f} | "
        f"{'met' if served['seconds'] < 1 and growth < 500 and served['status'] == 400 else 'NOT met'} (400 in < 1 s, < 500 MB) |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
