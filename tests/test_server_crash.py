"""The shared tracking server comes back after real crashes, with the documented commands.

A sweep logs to the session's PostgreSQL-backed server while its postmaster, or its MLflow server,
is killed with SIGKILL (what the OOM killer does: no pid file removed, no run ended). `make
tracking-server` brings it back, `status` says what is down, and no run is left RUNNING.
Real servers and sweeps: integration tests (skipped without the `scale` extra or PostgreSQL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from mlflow import MlflowClient

from profcast.hosting import tracking_server
from profcast.hosting.postgres_cluster import postgres_running, postmaster_pid
from tests.conftest import REPO
from tests.fixtures_scale import finish_sweep, start_sweep
from tests.test_scale import sweep_runs, wait_until_a_job_is_midway

pytestmark = pytest.mark.integration

# A restart on a loaded 2-core machine can take longer than profcast's default 2 minutes of retries: 9 retries
# at half MLflow's default backoff (an integer, 2) wait about as long in all (6 minutes), but the sweep goes on
# sooner after the restart instead of sleeping out a long backoff step.
PATIENT_CLIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def status_of(folder, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "profcast.hosting.tracking_server", "status"],
        cwd=REPO,
        env={**os.environ, "PROFCAST_SERVER_DIR": str(folder), "PROFCAST_SERVER_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def make(target: str, folder, port: int) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["make", "-s", target],
        cwd=REPO,
        env={**os.environ, "PROFCAST_SERVER_DIR": str(folder), "PROFCAST_SERVER_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr[-3000:]
    return done


def gone(still_there, timeout_s: float = 60) -> None:
    """Wait until ``still_there()`` is false: a killed process is gone once the kernel has ended it."""
    deadline = time.monotonic() + timeout_s
    while still_there():
        assert time.monotonic() < deadline, "the killed process is still there"
        time.sleep(0.1)


def has_pid(pid: int) -> bool:
    """Whether ``pid`` is still taken: a killed process not yet reaped still holds it, and PostgreSQL's start
    takes a lock file whose pid is taken for another postmaster's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_the_postmaster(folder) -> None:
    """SIGKILL the postmaster (what the OOM killer does) and wait until the kernel has ended it."""
    pid = postmaster_pid(folder / "postgres")
    os.kill(pid, signal.SIGKILL)
    gone(lambda: has_pid(pid))


def a_sweep_midway(uri: str, tmp_path, client_env=PATIENT_CLIENT):
    """A ratio,lr sweep on the embedded data (9 targets a job), returned once a job is midway.

    Its jobs log metrics only (no figures, no size what-if, no model): the crash is the point, and a job's
    9 targets keep it running long enough to be caught midway. ``client_env``: its MLflow client's retries."""
    experiment, sweep_dir = f"crash-{uuid.uuid4().hex[:6]}", str(tmp_path / "sweep")
    sweep = start_sweep(
        [
            "anchor=g3s.xlarge",
            "regressor=ratio,lr",
            "log_model=false",
            "log_plots=false",
            "whatif=none",
            f"tracking_uri={uri}",
            f"mlflow_experiment={experiment}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        **client_env,
    )
    client = MlflowClient(uri)
    try:
        wait_until_a_job_is_midway(client, experiment, sweep)
    except BaseException:
        finish_sweep(sweep)
        raise
    return sweep, client, experiment, sweep_dir


def assert_no_run_running(client, experiment, sweep_dir, output):
    parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
    assert "RUNNING" not in {run.info.status for run in everything}, output[-3000:]
    assert sorted(job.data.params["regressor"] for job in jobs if job.info.status == "FINISHED") == ["lr", "ratio"]


def test_after_its_postmaster_is_killed_mid_sweep_make_tracking_server_brings_it_back(
    postgres_tracking_server, postgres_tracking_server_folder, tmp_path
):
    folder, port = postgres_tracking_server_folder, tracking_server.read_state(postgres_tracking_server_folder).port
    sweep, client, experiment, sweep_dir = a_sweep_midway(postgres_tracking_server, tmp_path)
    try:
        kill_the_postmaster(folder)
        assert (folder / "postgres" / "postmaster.pid").exists()  # a real crash leaves it
        down = status_of(folder, port)
        assert down.returncode == 1 and "PostgreSQL not running" in down.stdout, down.stdout + down.stderr
        make("tracking-server", folder, port)  # the MLflow server lives on: PostgreSQL again, same port
        assert status_of(folder, port).returncode == 0
    finally:
        output = finish_sweep(sweep)
    assert sweep.returncode == 0, output[-3000:]
    assert_no_run_running(client, experiment, sweep_dir, output)

    # Stop and start after the same crash: `pg_ctl stop` alone fails on the stale pid file.
    kill_the_postmaster(folder)
    assert "tracking server stopped" in make("tracking-server-stop", folder, port).stdout
    assert not postgres_running(folder) and not (folder / "postgres" / "postmaster.pid").exists()
    make("tracking-server", folder, port)
    assert status_of(folder, port).returncode == 0
    assert client.get_run(sweep_runs(client, experiment, sweep_dir)[0].info.run_id).info.status == "FINISHED"


def test_after_its_mlflow_server_is_killed_and_its_state_file_cut_short_make_tracking_server_brings_it_back(
    postgres_tracking_server, postgres_tracking_server_folder, tmp_path
):
    folder = postgres_tracking_server_folder
    state = tracking_server.read_state(folder)
    sweep, client, experiment, sweep_dir = a_sweep_midway(postgres_tracking_server, tmp_path)
    try:
        os.kill(state.pid, signal.SIGKILL)  # the server process alone: its workers live on, orphaned
        (folder / "server.json").write_text(json.dumps(state.__dict__)[:20])  # and our state file half-written
        gone(lambda: tracking_server.mlflow_server_alive(state))
        down = status_of(folder, state.port)
        assert down.returncode == 1 and "not running" in down.stdout, down.stdout + down.stderr
        make("tracking-server", folder, state.port)
        restarted = tracking_server.read_state(folder)
        assert restarted.port == state.port and restarted.pid != state.pid
        assert status_of(folder, state.port).returncode == 0
        assert tracking_server.leftover_server_processes(folder)  # the new server's, and only those:
        assert all(os.getpgid(pid) == restarted.pid for pid in tracking_server.leftover_server_processes(folder))
    finally:
        output = finish_sweep(sweep)
    assert sweep.returncode == 0, output[-3000:]
    assert_no_run_running(client, experiment, sweep_dir, output)


@pytest.mark.parametrize("victim", ["mlflow server", "postgres"])
def test_a_sweep_rides_out_its_tracking_server_or_database_restarting(
    victim, postgres_tracking_server, postgres_tracking_server_folder, tmp_path
):
    """Killed mid-job (the MLflow server's whole process group, or the postmaster), started again 5 s later: with
    profcast's default retries (about 2 minutes) every job still finishes, with its metrics."""
    folder = postgres_tracking_server_folder
    state = tracking_server.read_state(folder)
    sweep, client, experiment, sweep_dir = a_sweep_midway(postgres_tracking_server, tmp_path, client_env={})
    try:
        if victim == "mlflow server":
            os.killpg(state.pid, signal.SIGKILL)  # the CLI and its uvicorn workers
        else:
            kill_the_postmaster(folder)
        time.sleep(5)
        tracking_server.start(folder, "127.0.0.1", state.port)  # PostgreSQL again too, on the same port
    finally:
        output = finish_sweep(sweep)
    assert sweep.returncode == 0, output[-3000:]
    parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
    assert sorted(job.data.params["regressor"] for job in jobs) == ["lr", "ratio"]
    assert {run.info.status for run in everything} == {"FINISHED"}
    assert all(len(client.get_run(job.info.run_id).data.metrics) > 0 for job in jobs)
