"""What logins cost on the shared tracking server: per request, and for a whole sweep through Ray.

    python -m benchmarks.tracking_auth [--requests 40] [--regressors rf,knn,dt,lr] [--markdown FILE]

It starts a throwaway tracking server (``profcast.hosting.tracking_server``: PostgreSQL, MLflow's
basic-auth app with profcast's registry rules and a verified login cached per worker) and, on the
same PostgreSQL database, two more MLflow servers for comparison: one without logins (anonymous)
and one with logins but MLflow's login cache off (every call re-hashes the password, as before).

1. Per request: ``--requests`` sequential calls of each kind a job makes (``runs/get``, a read, and
   ``runs/log-metric``, a write) to each server, through one keep-alive session as MLflow's client
   uses; median and 90th percentile in ms, and the median as a ratio to the anonymous server's.
2. The seed sweep (``regressor=rf,knn,dt,lr anchor=g3s.xlarge``, what ``make sweep`` runs; a smaller
   ``--regressors`` list on a busy machine) through ``hydra/launcher=ray`` with 2 CPUs, once into
   the authenticated server and once into a local SQLite store (and with ``--anonymous-sweep`` once
   into the anonymous server), one after the other in this run; wall time of the whole
   ``profcast train -m ...`` process and the ratio.
Every process runs at the benchmark's own niceness; the 1-minute load average is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "g3s.xlarge"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def comparison_server(folder: Path, pg_port: int, port: int, auth_config: Path | None) -> subprocess.Popen:
    """`mlflow server` on the tracking server's database: anonymous, or with the given auth config."""
    from profcast.hosting.credentials import server_secrets
    from profcast.hosting.postgres_cluster import backend_store_uri

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri(pg_port)]
    command += ["--serve-artifacts", "--artifacts-destination", str(folder / f"artifacts-{port}")]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    secrets = server_secrets(folder)
    env = {**os.environ, "PGPASSWORD": secrets["postgres_password"], "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if auth_config is not None:
        command += ["--app-name", "basic-auth"]
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(auth_config), MLFLOW_FLASK_SERVER_SECRET_KEY=secrets["flask_secret_key"])
    log = open(folder / f"comparison-{port}.log", "ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def uncached_auth_config(folder: Path) -> Path:
    """A copy of the server's basic_auth.ini with MLflow's login cache off (what profcast ran before)."""
    text = (folder / "basic_auth.ini").read_text()
    path = folder / "basic_auth_uncached.ini"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("auth_cache_")) + "\n")
    return path


def wait_healthy(uri: str, process: subprocess.Popen, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"comparison server {uri} exited with {process.returncode}")
        try:
            if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"comparison server {uri} did not answer in {seconds:.0f} s")


def request_costs(label: str, uri: str, login, count: int) -> list[dict]:
    """Median and p90 ms of `count` reads and writes of one run, after one untimed warm-up of each."""
    session = requests.Session()
    session.auth = login
    api = f"{uri}/api/2.0/mlflow"
    experiment = session.post(f"{api}/experiments/create", json={"name": f"bench-auth-{uuid.uuid4().hex[:6]}"})
    experiment.raise_for_status()
    run = session.post(f"{api}/runs/create", json={"experiment_id": experiment.json()["experiment_id"]}).json()
    run_id = run["run"]["info"]["run_id"]
    calls = {
        "runs/get": lambda step: session.get(f"{api}/runs/get", params={"run_id": run_id}),
        "runs/log-metric": lambda step: session.post(
            f"{api}/runs/log-metric",
            json={"run_id": run_id, "key": "loss", "value": float(step), "timestamp": 0, "step": step},
        ),
    }
    rows = []
    for kind, call in calls.items():
        for warm_up in range(4):  # each worker verifies the login once
            call(-1 - warm_up).raise_for_status()
        times = []
        for step in range(count):
            started = time.perf_counter()
            call(step).raise_for_status()
            times.append(1000 * (time.perf_counter() - started))
        rows.append(
            {
                "server": label,
                "request": kind,
                "median_ms": statistics.median(times),
                "p90_ms": statistics.quantiles(times, n=10)[-1],
            }
        )
    return rows


def run_sweep(uri: str, regressors: str, scratch: Path, label: str) -> dict:
    """The seed sweep through a local 2-CPU Ray cluster into uri; wall time and mean load."""
    sweep_dir = scratch / f"sweep-{label}"
    command = [sys.executable, "-m", "profcast.train", "-m", "hydra/launcher=ray"]
    command += ["+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false"]
    command += [
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        f"+hydra.launcher.ray.init._temp_dir={scratch}/ray",
    ]
    command += [f"regressor={regressors}", f"anchor={ANCHOR}", f"tracking_uri={uri}", f"hydra.sweep.dir={sweep_dir}"]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PROFCAST_PARENT_RUN_ID")}
    env.update(ONE_THREAD, RAY_worker_niceness=str(os.nice(0)))  # Ray's workers at our niceness, not 15
    loads, started = [], time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        sweep = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        while sweep.poll() is None:
            loads.append(os.getloadavg()[0])
            time.sleep(2)
        wall = time.perf_counter() - started
        if sweep.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"sweep into {uri} exited {sweep.returncode}:\n{output.read()[-3000:]}")
    return {"store": label, "wall_s": wall, "mean_load_1min": sum(loads) / max(len(loads), 1)}


def stop_group(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv=None) -> int:
    """Run both measurements and print (and optionally write) the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="timed calls of each kind per server")
    parser.add_argument("--regressors", default="rf,knn,dt,lr", help="the sweep's regressors ('' skips the sweep)")
    parser.add_argument("--anonymous-sweep", action="store_true", help="also run the sweep into the anonymous server")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    from profcast.hosting import tracking_server
    from profcast.hosting.model_server import free_loopback_port
    from profcast.tracking.credentials import read_credentials

    scratch = Path(tempfile.mkdtemp(prefix="profcast-bench-auth-"))
    scratch.chmod(0o755)  # PostgreSQL may run as another user and must reach its folder
    folder, others = scratch / "server", []
    try:
        state = tracking_server.start(folder, "127.0.0.1", free_loopback_port())
        login = read_credentials(folder / "credentials")
        servers = {"logins, cached (profcast now)": (state.uri, login)}
        for label, config in (("anonymous", None), ("logins, re-hashed every call", uncached_auth_config(folder))):
            port = free_loopback_port()
            others.append(comparison_server(folder, state.pg_port, port, config))
            wait_healthy(f"http://127.0.0.1:{port}", others[-1])
            servers[label] = (f"http://127.0.0.1:{port}", None if config is None else login)
        load_before = os.getloadavg()[0]
        rows = [row for label, (uri, auth) in servers.items() for row in request_costs(label, uri, auth, args.requests)]
        costs = pd.DataFrame(rows)
        anonymous = costs[costs.server == "anonymous"].set_index("request").median_ms
        costs["vs_anonymous"] = costs.median_ms / costs.request.map(anonymous)
        stop_group(others.pop())  # the uncached server; the anonymous one stays for its own sweep
        sweeps = None
        if args.regressors:
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = login
            local = f"sqlite:///{scratch / 'local' / 'mlflow.db'}"
            rows = [
                run_sweep(state.uri, args.regressors, scratch, "authenticated server"),
                run_sweep(local, args.regressors, scratch, "local SQLite store"),
            ]
            if args.anonymous_sweep:  # how much of the server's cost is the login's
                rows.append(run_sweep(servers["anonymous"][0], args.regressors, scratch, "anonymous server"))
            sweeps = pd.DataFrame(rows)
            sweeps["vs_local"] = sweeps.wall_s / sweeps.wall_s.iloc[1]
    finally:
        for process in others:
            stop_group(process)
        tracking_server.stop(folder)
        shutil.rmtree(scratch, ignore_errors=True)
    text = (
        f"Per request ({args.requests} timed calls of each kind per server, one keep-alive session, "
        f"load average {load_before:.1f} at the start, {os.cpu_count()} cores):\n\n"
        f"{costs.round(2).to_markdown(index=False)}\n"
    )
    if sweeps is not None:
        text += (
            f"\nThe sweep `-m regressor={args.regressors} anchor={ANCHOR}` through `hydra/launcher=ray` (2 CPUs), "
            f"wall time of the whole command:\n\n{sweeps.round(2).to_markdown(index=False)}\n"
        )
    print(text)
    if args.markdown:
        command = " ".join(["python -m benchmarks.tracking_auth", *(sys.argv[1:] if argv is None else argv)])
        args.markdown.write_text(f"# Logins on the tracking server\n\n`{command}`\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
