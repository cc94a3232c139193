"""Serving benchmark: one job model over HTTP (`mlflow models serve`) next to in-process predict.

    python -m benchmarks.serving [--model URI] [--regressor rf] [--single 100] [--batches 20]

Without --model it trains a job (anchor g3s.xlarge, embedded default data) into a temporary
MLflow store first. It then serves the model on a free 127.0.0.1 port, sends a fixed number of
1-row and 100-row `dataframe_split` requests over one keep-alive connection, times the same
rows through the loaded model's `predict`, prints p50/p99 latency and rows/s for both and their
ratios, and stops the server.
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
import time
from pathlib import Path

import numpy as np
import pandas as pd

ANCHOR = "g3s.xlarge"
REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH_ROWS = 100


def train_job_model(regressor: str) -> str:
    """Train one job on the embedded default in a child process; return its job model URI.

    A child process, so this process only loads the model, like the server does.
    """
    import mlflow

    from profcast.jobmodel.storage import JOB_MODEL_NAME, JOB_MODEL_TAG

    command = [sys.executable, "-m", "profcast.train", f"anchor={ANCHOR}", f"regressor={regressor}"]
    trained = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if trained.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(command)}):\n{trained.stderr[-2000:]}")
    runs = mlflow.search_runs(
        experiment_names=["profcast"], filter_string=f"tags.`{JOB_MODEL_TAG}` = '{JOB_MODEL_NAME}'"
    )
    return f"runs:/{runs.iloc[0].run_id}/{JOB_MODEL_NAME}"


def request_rows(model) -> pd.DataFrame:
    """The anchor's embedded profiles, restricted to the model's input columns, as request rows."""
    from profcast.datasets.embedded import load_embedded_profiles
    from profcast.jobmodel.requests import model_op_columns

    profiles = load_embedded_profiles()
    anchor = profiles[profiles["instance_name"] == ANCHOR]
    columns = [c for c in model_op_columns(model.metadata.get_input_schema()) if c in anchor.columns] + [
        "batch_latency"
    ]
    return anchor.sample(BATCH_ROWS, replace=True, random_state=0)[columns].reset_index(drop=True)


def time_calls(call, repeats: int, warmup: int = 5) -> np.ndarray:
    """Seconds per call, after a few untimed warm-up calls."""
    for _ in range(warmup):
        call()
    seconds = np.empty(repeats)
    for number in range(repeats):
        started = time.perf_counter()
        call()
        seconds[number] = time.perf_counter() - started
    return seconds


def http_caller(port: int, payload: bytes):
    """A function that posts ``payload`` on one keep-alive connection and parses the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}

    def call():
        connection.request("POST", "/invocations", body=payload, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"server answered {answer.status}: {body[:300]!r}")
        return json.loads(body)

    return call, connection


def summary(seconds: np.ndarray, rows: int) -> dict:
    return {
        "p50_ms": 1000 * np.percentile(seconds, 50),
        "p99_ms": 1000 * np.percentile(seconds, 99),
        "rows_per_s": rows * len(seconds) / seconds.sum(),
    }


def report(results: dict, n_targets: int) -> str:
    lines = [f"{'request':<10}{'path':<16}{'calls':>6}{'p50 ms':>10}{'p99 ms':>10}{'rows/s':>11}"]
    for label, (calls, in_process, over_http) in results.items():
        for path, figures in (("in-process", in_process), ("HTTP", over_http)):
            lines.append(
                f"{label:<10}{path:<16}{calls:>6}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}{figures['rows_per_s']:>11.0f}"
            )
        lines.append(
            f"{label:<10}{'HTTP/in-process':<16}{'':>6}{over_http['p50_ms'] / in_process['p50_ms']:>9.1f}x"
            f"{over_http['p99_ms'] / in_process['p99_ms']:>9.1f}x{over_http['rows_per_s'] / in_process['rows_per_s']:>10.2f}x"
        )
    lines.append(f"rows/s counts request (anchor) rows; each returns {n_targets} prediction rows, one per target.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="job model URI to serve (default: train one into a temporary store)")
    parser.add_argument(
        "--regressor", default="rf", help="regressor for the trained job (default rf, the config default)"
    )
    parser.add_argument("--single", type=int, default=100, help="number of timed 1-row requests")
    parser.add_argument("--batches", type=int, default=20, help=f"number of timed {BATCH_ROWS}-row requests")
    args = parser.parse_args(argv)

    import mlflow

    from profcast.hosting.model_server import ModelServer

    temporary = None
    if args.model is None:
        temporary = Path(tempfile.mkdtemp(prefix="profcast-bench-"))
        (temporary / "mlruns").mkdir()
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{temporary / 'mlruns' / 'mlflow.db'}"
    try:
        started = time.perf_counter()
        model_uri = args.model or train_job_model(args.regressor)
        if args.model is None:
            print(f"trained {model_uri} ({args.regressor}) in {time.perf_counter() - started:.0f} s")
        model = mlflow.pyfunc.load_model(model_uri)
        rows = request_rows(model)
        n_targets = len(model.metadata.metadata["targets"])
        cases = {"1 row": (rows.head(1), args.single), f"{BATCH_ROWS} rows": (rows, args.batches)}
        log_path = Path(temporary or tempfile.gettempdir()) / "benchmark-server.log"
        with ModelServer(model_uri, log_path, env={"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}) as server:
            print(f"serving {model_uri} on {server.url} (log: {log_path})")
            results = {}
            for label, (frame, calls) in cases.items():
                in_process = time_calls(lambda: model.predict(frame), calls)
                payload = json.dumps(
                    {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}
                ).encode()
                call, connection = http_caller(server.port, payload)
                over_http = time_calls(call, calls)
                connection.close()
                results[label] = (calls, summary(in_process, len(frame)), summary(over_http, len(frame)))
        print(report(results, n_targets))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
