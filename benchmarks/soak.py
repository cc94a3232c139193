"""Soak benchmark: the served champion under 8 concurrent clients for N minutes.

    python -m benchmarks.soak [--minutes 10] [--clients 8] [--regressor rf] [--markdown benchmarks/results/soak.md]

Trains one job on the embedded default (anchor g3s.xlarge) into a temporary MLflow store, registers it
as ``profcast-g3s.xlarge@champion``, checks that version (``profcast registry --check``) and serves it
with ``mlflow models serve`` on a free 127.0.0.1 port. Each client keeps one keep-alive connection
and cycles through a mix: 1-row requests, 100-row requests and bad requests (no op column the model
knows, a negative time, a string where a number goes, a body that is not JSON). It counts errors on good
requests (must be 0) and bad requests not answered 400, reports p50/p99 latency per kind and the
server's resident memory (every process of its group) after a warm-up and at the end (growth must
stay under 10%).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.serving import ANCHOR, REPO_ROOT, request_rows, train_job_model

# One cycle of each client: mostly good requests of both sizes, one bad one in five.
MIX = ("1 row", "100 rows", "1 row", "100 rows", "bad")
RSS_SAMPLE_S = 5.0
MAX_RSS_GROWTH = 0.10


def payloads(rows) -> dict:
    """Request bodies by kind: the good ones, and a list of bad ones that must each get a 400."""

    def encode(frame) -> bytes:
        return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()

    one = rows.head(1)
    # A request may leave out ops (they did not run); one with no op column the model knows is bad.
    unknown = one.rename(columns={column: f"Unknown_{number}" for number, column in enumerate(one.columns)})
    negative = one.copy()
    negative.iloc[0, 0] = -5.0
    text = json.loads(encode(one))
    text["dataframe_split"]["data"][0][0] = "fast"
    return {
        "1 row": encode(one),
        "100 rows": encode(rows),
        "bad": [
            ("no known op column", encode(unknown)),
            ("negative time", encode(negative)),
            ("text for a number", json.dumps(text).encode()),
            ("not JSON", b'{"dataframe_split": [1, 2'),
        ],
    }


class Client(threading.Thread):
    """One client: its own keep-alive connection, the MIX in a loop until the deadline."""

    def __init__(self, number: int, port: int, bodies: dict, deadline: float):
        super().__init__(daemon=True)
        self.number, self.port, self.bodies, self.deadline = number, port, bodies, deadline
        self.seconds = defaultdict(list)  # kind -> latencies
        self.errors = defaultdict(list)  # kind -> what went wrong

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        step = self.number  # clients start at different points of the mix
        while time.monotonic() < self.deadline:
            kind = MIX[step % len(MIX)]
            label, body = (
                (kind, self.bodies[kind])
                if kind != "bad"
                else self.bodies["bad"][(step // len(MIX)) % len(self.bodies["bad"])]
            )
            step += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.errors[kind].append(f"{label}: {type(error).__name__}: {error}")
                continue
            self.seconds[kind].append(time.perf_counter() - started)
            expected = 400 if kind == "bad" else 200
            if status != expected:
                self.errors[kind].append(f"{label}: HTTP {status}")
        connection.close()


def group_rss_mb(leader: int) -> float:
    """Resident memory of every process in the server's session (the CLI and its uvicorn worker), in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != leader:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def champion_version(regressor: str) -> str:
    """Train, register the job as the anchor's champion, check it; the checked version's URI."""
    from profcast.champions.register import champion_uri
    from profcast.serve.registry_check import checked_version_uri

    train_job_model(regressor)
    registered = subprocess.run(
        [sys.executable, "-m", "profcast.registry", "--anchor", ANCHOR], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if registered.returncode != 0:
        raise SystemExit(f"registering the champion failed:\n{registered.stderr[-2000:]}")
    return checked_version_uri(champion_uri(ANCHOR))


def report(
    clients: list, minutes: float, rss: list, warm_index: int, model_uri: str, regressor: str
) -> tuple[str, bool]:
    """The markdown table and whether the bars (0 errors on good requests, RSS growth < 10%) were met."""
    lines = [
        f"Model `{model_uri}` ({regressor}, anchor {ANCHOR}), {len(clients)} clients, {minutes:g} min, loopback.",
        "",
        "| request | answered | wrong answers | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    good_errors = 0
    for kind in ("1 row", "100 rows", "bad"):
        seconds = np.array([s for client in clients for s in client.seconds[kind]])
        errors = [e for client in clients for e in client.errors[kind]]
        if kind != "bad":
            good_errors += len(errors)
        p50, p99 = (1000 * np.percentile(seconds, q) if len(seconds) else float("nan") for q in (50, 99))
        lines.append(
            f"| {kind}{' (must be 400)' if kind == 'bad' else ''} | {len(seconds)} | {len(errors)} | {p50:.1f} | {p99:.1f} |"
        )
        if errors:
            lines.append(f"|  first wrong answers: {'; '.join(sorted(set(errors))[:3])} | | | | |")
    warm, end = rss[warm_index][1], rss[-1][1]
    growth = (end - warm) / warm
    peak = max(value for _, value in rss)
    lines += [
        "",
        f"Server RSS (all processes of its group): {rss[0][1]:.0f} MB at start, {warm:.0f} MB after warm-up "
        f"({rss[warm_index][0]:.0f} s), {end:.0f} MB at the end, peak {peak:.0f} MB; growth after warm-up {100 * growth:+.1f}% "
        f"(bar: < {100 * MAX_RSS_GROWTH:.0f}%).",
        f"Errors on good requests: {good_errors} (bar: 0).",
    ]
    return "\n".join(lines), good_errors == 0 and growth < MAX_RSS_GROWTH


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the clients run (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--regressor", default="rf", help="regressor of the served job (default rf, the config default)"
    )
    parser.add_argument("--markdown", help="also write the result table to this file")
    args = parser.parse_args(argv)

    import mlflow

    from profcast.hosting.model_server import ModelServer

    temporary = Path(tempfile.mkdtemp(prefix="profcast-soak-"))
    (temporary / "mlruns").mkdir()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{temporary / 'mlruns' / 'mlflow.db'}"
    try:
        model_uri = champion_version(args.regressor)
        rows = request_rows(mlflow.pyfunc.load_model(model_uri))
        bodies = payloads(rows)
        log_path = temporary / "soak-server.log"
        with ModelServer(model_uri, log_path, env={"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}) as server:
            started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            print(
                f"serving {model_uri} on {server.url}; {args.clients} clients for {args.minutes:g} min from {started_at}",
                flush=True,
            )
            start = time.monotonic()
            deadline = start + 60 * args.minutes
            clients = [Client(number, server.port, bodies, deadline) for number in range(args.clients)]
            rss = [(0.0, group_rss_mb(server.process.pid))]
            for client in clients:
                client.start()
            while any(client.is_alive() for client in clients):
                time.sleep(RSS_SAMPLE_S)
                rss.append((time.monotonic() - start, group_rss_mb(server.process.pid)))
            load = os.getloadavg()
        # Warm-up: the first tenth of the run (at most a minute): caches, arenas and lazy imports fill up.
        warm_s = min(60.0, 6.0 * args.minutes)
        warm_index = next(index for index, (second, _) in enumerate(rss) if second >= warm_s or index == len(rss) - 1)
        table, met = report(clients, args.minutes, rss, warm_index, model_uri, args.regressor)
        text = (
            f"# Soak: the served champion under load\n\n`python -m benchmarks.soak --minutes {args.minutes:g}`, "
            f"started {started_at}, 2-core machine shared with other sessions (load average at the end "
            f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}).\n\n{table}\n\nBars {'met' if met else 'NOT met'}.\n"
        )
        print(text)
        if args.markdown:
            Path(args.markdown).write_text(text)
        return 0 if met else 1
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
