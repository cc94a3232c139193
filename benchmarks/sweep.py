"""Sweep benchmark: one sweep through the basic, joblib and Ray launchers against the PostgreSQL-backed server.

    python -m benchmarks.sweep [--uri http://127.0.0.1:5050] [--workers 2] [--markdown benchmarks/results/sweep.md]

The sweep is `regressor=knn,dt,lr,ratio features=all,top10` (8 jobs) on the embedded default data,
anchor g3s.xlarge. Without --uri it starts a throwaway tracking server (PostgreSQL + served
artifacts) in a temporary folder and removes it afterwards. Each launcher runs the same command
line (`profcast train -m ...`) in a child process; the wall time is that process's, from start
to exit, Ray's cluster start included, next to the machine's mean 1-minute load average meanwhile
(its own workers included: on 2 cores, a load above the worker count means other work competed
for the cores). Afterwards it counts, in the store, the sweep's job runs
that FINISHED: it must equal the jobs launched. Parallel workers get one BLAS/OpenMP thread each
(loky and Ray set that too), so 2 jobs on 2 cores do not oversubscribe; `rf` is left out because
it threads internally (`n_jobs=-1`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
ANCHOR = "g3s.xlarge"
REGRESSORS = ("knn", "dt", "lr", "ratio")
FEATURES = ("all", "top10")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def launcher_overrides(launcher: str, workers: int, scratch: Path) -> list[str]:
    """The two or so overrides that pick a launcher; the sweep itself is the same for all."""
    if launcher == "basic":
        return ["hydra/launcher=basic"]
    if launcher == "joblib":
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"]
    return [
        "hydra/launcher=ray",
        f"+hydra.launcher.ray.init.num_cpus={workers}",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        f"+hydra.launcher.ray.init._temp_dir={scratch / 'ray'}",
    ]


def run_sweep(launcher: str, workers: int, uri: str, scratch: Path) -> dict:
    """Run the sweep through one launcher; return its wall time and the runs the store holds after."""
    experiment = f"bench-sweep-{launcher}-{uuid.uuid4().hex[:6]}"
    sweep_dir = scratch / f"sweep-{launcher}"
    command = [
        sys.executable,
        "-m",
        "profcast.train",
        "-m",
        *launcher_overrides(launcher, workers, scratch),
        f"anchor={ANCHOR}",
        f"regressor={','.join(REGRESSORS)}",
        f"features={','.join(FEATURES)}",
        f"tracking_uri={uri}",
        f"mlflow_experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {
        key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "PROFCAST_PARENT_RUN_ID")
    }
    if launcher != "basic":
        env.update(ONE_THREAD)
    # Ray runs its workers at nice 15; on a machine shared with other work that makes every other
    # process go first. Niceness 0, as for the other launchers' workers (and Ray's own job API).
    env["RAY_worker_niceness"] = "0"
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        sweep = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        loads = []
        while sweep.poll() is None:  # the machine's load while the sweep runs, its own jobs included
            loads.append(os.getloadavg()[0])
            time.sleep(2)
        wall = time.perf_counter() - started
        if sweep.returncode != 0:
            output.seek(0)
            print(f"{launcher}: sweep exited {sweep.returncode}:\n{output.read()[-3000:]}", file=sys.stderr)
    launched = len(REGRESSORS) * len(FEATURES)
    finished = finished_job_runs(uri, experiment, str(sweep_dir))
    return {
        "launcher": launcher,
        "workers": 1 if launcher == "basic" else workers,
        "wall_s": wall,
        "mean_load_1min": sum(loads) / max(len(loads), 1),
        "jobs_launched": launched,
        "job_runs_finished": finished,
        "lost_runs": launched - finished,
    }


def finished_job_runs(uri: str, experiment: str, sweep_dir: str) -> int:
    """FINISHED job runs under the parent run of the sweep into sweep_dir."""
    from mlflow import MlflowClient

    from profcast.tracking.sweep_runs import SWEEP_DIR_TAG, child_runs

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    parents = client.search_runs([found.experiment_id], f"tags.`{SWEEP_DIR_TAG}` = '{sweep_dir}'")
    import mlflow

    mlflow.set_tracking_uri(uri)  # child_runs uses the default client
    return sum(job.info.status == "FINISHED" for parent in parents for job in child_runs(parent.info.run_id))


def results_table(rows: list[dict]) -> pd.DataFrame:
    """One row per launcher, with the wall time as a ratio to the basic launcher's."""
    table = pd.DataFrame(rows)
    basic = table.loc[table.launcher == "basic", "wall_s"]
    table["vs_basic"] = table.wall_s / basic.iloc[0] if len(basic) else float("nan")
    columns = [
        "launcher",
        "workers",
        "wall_s",
        "vs_basic",
        "mean_load_1min",
        "jobs_launched",
        "job_runs_finished",
        "lost_runs",
    ]
    return table[columns].round(2)


def main(argv=None) -> int:
    """Run the benchmark and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a running tracking server (default: start a throwaway one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--launchers", default="basic,joblib,ray")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    from profcast.hosting import tracking_server
    from profcast.hosting.model_server import free_loopback_port

    scratch = Path(tempfile.mkdtemp(prefix="profcast-bench-"))
    scratch.chmod(0o755)  # PostgreSQL may run as another user and must reach its folder
    try:
        uri = args.uri or tracking_server.start(scratch / "server", "127.0.0.1", free_loopback_port()).uri
        rows = []
        for launcher in args.launchers.split(","):
            rows.append(run_sweep(launcher, args.workers, uri, scratch))
            print(
                f"{launcher}: {rows[-1]['wall_s']:.1f} s, {rows[-1]['job_runs_finished']}/{rows[-1]['jobs_launched']} job runs",
                file=sys.stderr,
            )
    finally:
        if not args.uri:
            tracking_server.stop(scratch / "server")
        shutil.rmtree(scratch, ignore_errors=True)
    table = results_table(rows).to_markdown(index=False)
    sweep = f"regressor={','.join(REGRESSORS)} features={','.join(FEATURES)} ({len(list(itertools.product(REGRESSORS, FEATURES)))} jobs)"
    print(f"{sweep}, anchor {ANCHOR}, embedded default data, {os.cpu_count()} cores\n\n{table}")
    if args.markdown:
        args.markdown.write_text(
            f"# Sweep benchmark\n\n`python -m benchmarks.sweep`: {sweep}, anchor {ANCHOR}, "
            f"embedded default data, {os.cpu_count()} cores, PostgreSQL-backed tracking server.\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
