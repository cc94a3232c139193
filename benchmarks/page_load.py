"""Load benchmark of the forecast page: 8 clients sending gzip bombs and normal forecasts for 3 minutes.

    python -m benchmarks.page_load [--minutes 3] [--clients 8] [--model URI --store URI]
                                   [--markdown benchmarks/results/page-load.md]

Without --model it trains one ratio job on the embedded default (anchor g3s.xlarge) into a temporary
MLflow store. It starts ``profcast web --model URI`` on a free 127.0.0.1 port, loads the
model with one forecast, then times normal forecasts one at a time (idle) and reads the server's
resident memory. Then each client runs a fixed cycle of normal forecasts and hostile uploads (gzip
bombs that unpack to 1 GiB and 8 GiB, one sent and abandoned at once, a file of NUL bytes) until the
time is up, on connections of its own, with its process niced so the server gets the CPU first.

It reports each kind's answers and latency, the normal forecasts' p99 under load against idle
(target <= 3x) and the server's peak memory against idle (target within 500 MB). docs/web.md.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.soak import group_rss_mb

REPO_ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "g3s.xlarge"
EXAMPLE = REPO_ROOT / "examples" / "profiles" / "vggsmall_cifar10_g3s.csv"
MiB = 1024**2
# One cycle of each client: a normal forecast, then an attack: three gzip bombs and a file of NUL bytes.
CYCLE = ("normal", "bomb 1 GiB", "bomb 8 GiB", "bomb, client leaves", "NUL bytes")
EXPECTED = {"normal": 200, "bomb 1 GiB": 413, "bomb 8 GiB": 413, "NUL bytes": 400}
IDLE_FORECASTS = 40
RSS_SAMPLE_S = 1.0
TARGET_P99_RATIO, TARGET_RSS_MB = 3.0, 500.0
REQUEST_TIMEOUT_S = 120


def bomb(text_bytes: int) -> bytes:
    """A gzip of ``text_bytes`` zeros: one 16 MiB member repeated (readers go through every member)."""
    member = gzip.compress(b"0" * (16 * MiB), compresslevel=9)
    return member * (text_bytes // (16 * MiB))


def bodies() -> dict[str, tuple[str, bytes]]:
    """Kind -> (file name sent, body)."""
    return {
        "normal": (EXAMPLE.name, EXAMPLE.read_bytes()),
        "bomb 1 GiB": ("run.pt.trace.json.gz", bomb(1024 * MiB)),
        "bomb 8 GiB": ("table.csv.gz", bomb(8 * 1024 * MiB)),
        "bomb, client leaves": ("run.pt.trace.json.gz", bomb(1024 * MiB)),
        "NUL bytes": ("profile.csv", b"\0" * 65536),
    }


def post(port: int, name: str, body: bytes, leave: bool = False) -> tuple[int | None, float]:
    """POST one upload; (status, seconds). ``leave``: close the connection once sent, without an answer."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(
            "POST",
            f"/api/forecast?anchor={ANCHOR}&name={name}",
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if leave:
            connection.sock.shutdown(socket.SHUT_RDWR)
            return None, time.perf_counter() - started
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def trained_model(folder: Path) -> tuple[str, str]:
    """Train one ratio job into a fresh store in ``folder``; (store URI, job model URI)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "profcast.train", f"anchor={ANCHOR}", "regressor=ratio"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["profcast"], filter_string="tags.`profcast.job_model` = 'profcast'")
    return uri, f"runs:/{runs.iloc[0].run_id}/profcast"


def start_page(store: str, model: str, folder: Path) -> tuple[subprocess.Popen, int]:
    """``profcast web --model MODEL`` on a free port, in its own session; once it answers."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    server = subprocess.Popen(
        [sys.executable, "-m", "profcast.web", "--port", str(port), "--model", model],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "page.log", "w"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the page exited ({server.returncode}); see {folder / 'page.log'}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/anchors")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the page did not start within 300 s")


class Clients:
    """``count`` client threads cycling through CYCLE until ``seconds`` have passed."""

    def __init__(self, port: int, count: int, seconds: float, uploads: dict):
        self.port, self.count, self.seconds, self.uploads = port, count, seconds, uploads
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.answers: dict[str, Counter] = defaultdict(Counter)
        self.lock = threading.Lock()

    def client(self, number: int) -> None:
        stop_at = time.monotonic() + self.seconds
        step = number  # clients start at different places of the cycle
        while time.monotonic() < stop_at:
            kind = CYCLE[step % len(CYCLE)]
            step += 1
            name, body = self.uploads[kind]
            try:
                status, seconds = post(self.port, name, body, leave=kind == "bomb, client leaves")
            except OSError as error:
                status, seconds = type(error).__name__, float("nan")
            with self.lock:
                self.answers[kind][status] += 1
                if status == EXPECTED.get(kind):
                    self.latency[kind].append(seconds)

    def run(self) -> None:
        threads = [threading.Thread(target=self.client, args=(number,)) for number in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def sample_rss(leader: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(RSS_SAMPLE_S):
        samples.append(group_rss_mb(leader))


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q) * 1000) if seconds else float("nan")


def report(idle: list[float], clients: Clients, idle_rss: float, peak_rss: float, args) -> str:
    """The markdown table and the two verdicts."""
    lines = [
        f"{args.clients} clients for {args.minutes:g} min against `profcast web` on 127.0.0.1 "
        f"(workers and queue: the page's defaults); {os.cpu_count()} CPUs; clients niced.",
        "",
        "| requests | answered | count | p50 (ms) | p99 (ms) |",
        "|---|---|---:|---:|---:|",
        f"| normal, idle (one at a time) | 200 | {len(idle)} | {percentile_ms(idle, 50):.0f} | "
        f"{percentile_ms(idle, 99):.0f} |",
    ]
    for kind in dict.fromkeys(CYCLE):
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(clients.answers[kind].items(), key=str))
        shown = clients.latency[kind]
        lines.append(
            f"| {kind} | {answers} | {sum(clients.answers[kind].values())} | "
            f"{percentile_ms(shown, 50):.0f} | {percentile_ms(shown, 99):.0f} |"
        )
    ratio = percentile_ms(clients.latency["normal"], 99) / percentile_ms(idle, 99)
    median_ratio = percentile_ms(clients.latency["normal"], 99) / percentile_ms(idle, 50)
    growth = peak_rss - idle_rss
    lines += [
        "",
        f"- normal forecasts' p99 under load / idle p99: **{ratio:.2f}x** (target <= {TARGET_P99_RATIO:g}x: "
        f"{'met' if ratio <= TARGET_P99_RATIO else 'NOT met'}); against the idle median: {median_ratio:.2f}x",
        f"- server memory: idle {idle_rss:.0f} MB, peak under load {peak_rss:.0f} MB, **+{growth:.0f} MB** "
        f"(target within {TARGET_RSS_MB:g} MB: {'met' if growth <= TARGET_RSS_MB else 'NOT met'})",
        "- a bomb, client leaves: sent and the connection closed without reading the answer (its status: None)",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the benchmark; print (and optionally write) its markdown report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.page_load", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model", help="a job model URI in --store (default: train one into a temporary store)")
    parser.add_argument("--store", help="the MLflow tracking URI holding --model")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="page-load-") as temporary:
        folder = Path(temporary)
        store, model = (args.store, args.model) if args.model else trained_model(folder)
        server, port = start_page(store, model, folder)
        try:
            uploads = bodies()
            name, body = uploads["normal"]
            assert post(port, name, body)[0] == 200, "the first forecast failed"  # loads the model
            idle = []
            for _ in range(IDLE_FORECASTS):
                status, seconds = post(port, name, body)
                assert status == 200
                idle.append(seconds)
            idle_rss = group_rss_mb(server.pid)
            os.nice(10)  # the clients yield the CPU to the server (started before this)
            samples, stop = [], threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(server.pid, stop, samples), daemon=True)
            sampler.start()
            clients = Clients(port, args.clients, args.minutes * 60, uploads)
            clients.run()
            stop.set()
            sampler.join()
            text = report(idle, clients, idle_rss, max(samples, default=idle_rss), args)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
