"""Faults of the store and the machine: a truncated store file, a disk that fills up while logging,
the tracking server or its database killed mid-sweep.

Each must end in one error line, leave no run RUNNING, keep the earlier runs, and a rerun must complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from profcast.train import train
from tests.bad_input_cases import error_lines
from tests.conftest import compose_train, mlflow_reset_tracking_uri, store_with_trained_job

# A small job that still logs runs, metrics, figures and a model: one target, no size what-if. The faults
# below are the store's and the disk's; the job itself only has to write to them.
SMALL_JOB = ("target=fast.gpu", "whatif=none")


def train_args(table: Path, uri: str, *extra: str) -> list[str]:
    return [
        "-m",
        "profcast.train",
        "data=file",
        f"data.path={table}",
        "anchor=slow.gpu",
        "regressor=ratio",
        *SMALL_JOB,
        f"tracking_uri={uri}",
        *extra,
    ]


def statuses(uri: str, experiment: str = "profcast") -> dict:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return {run.info.run_id: run.info.status for run in client.search_runs([found.experiment_id])} if found else {}


def assert_one_error_line(result, words: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and words in lines[0], result.stderr[-3000:]
    return lines[0]


def test_a_truncated_sqlite_store_is_named_and_a_new_one_can_start(run_cli, profile_csv, tmp_path, trained_job):
    # A store a job has written to (the shared job's, copied): the fault is cutting it short, not the job.
    database = tmp_path / "store" / "mlruns" / "mlflow.db"
    uri = store_with_trained_job(trained_job, tmp_path / "store")["uri"]
    assert uri == f"sqlite:///{database}"  # (read by no client here: one would keep the old file open)
    whole = database.stat().st_size
    with open(database, "r+b") as handle:
        handle.truncate(whole * 9 // 10)  # the tail of the file is gone, the header still says how long it was
    args = train_args(profile_csv, uri, "log_plots=false", "log_model=false")  # the store is the point here
    refused = run_cli(args, timeout=300)
    line = assert_one_error_line(
        refused, f"tracking store {uri} is truncated: {whole * 9 // 10:,} of its {whole:,} bytes"
    )
    assert f"mv {database} {database}.broken" in line
    assert database.stat().st_size == whole * 9 // 10  # nothing was written over it
    database.rename(database.with_name("mlflow.db.broken"))  # what the line says to do
    rerun = run_cli(args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert set(statuses(uri).values()) == {"FINISHED"}


@pytest.fixture
def small_disk():
    """A real 16 MB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="profcast-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of folder up to leave_bytes free; the filler file's path."""
    free = shutil.disk_usage(folder).free
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(free - leave_bytes, 0))
    return filler


def test_a_disk_full_while_logging_fails_the_run_in_one_line_and_a_rerun_completes(
    run_cli, profile_csv, tmp_path, small_disk, empty_tracking_database
):
    shutil.copy(empty_tracking_database, tmp_path / "mlflow.db")  # its tables made: no migrations to wait for
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = "artifacts-on-a-small-disk"
    MlflowClient(uri).create_experiment(experiment, artifact_location=(small_disk / "artifacts").as_uri())
    args = train_args(profile_csv, uri, f"mlflow_experiment={experiment}")
    # The earlier job, trained in this process: it only has to leave finished runs and a model on the disk.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
        train(compose_train(args[2:]))
    mlflow_reset_tracking_uri()
    jobs_before = statuses(uri, experiment)
    assert set(jobs_before.values()) == {"FINISHED"}

    filler = fill(small_disk, leave_bytes=16 * 1024)  # room for a plot or two, not for the model
    refused = run_cli(args, timeout=300)
    assert_one_error_line(refused, "no space left on the device")
    assert "open runs ended FAILED" in error_lines(refused.stderr)[0]
    after = statuses(uri, experiment)
    assert "RUNNING" not in after.values()
    assert "FAILED" in after.values()
    assert {run: after[run] for run in jobs_before} == jobs_before  # earlier runs untouched
    client = MlflowClient(uri)
    earlier_job = next(
        run
        for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
        if run.info.run_id in jobs_before and "mlflow.parentRunId" not in run.data.tags
    )
    assert client.get_run(earlier_job.info.run_id).data.tags.get("profcast.job_model_uri")  # its model still listed

    filler.unlink()  # space freed
    rerun = run_cli(args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final = statuses(uri, experiment)
    assert "RUNNING" not in final.values() and list(final.values()).count("FINISHED") == 2 * len(jobs_before)


def kill_mlflow_server(folder: Path) -> None:
    """kill -9 the MLflow server's whole process group (the CLI and its uvicorn workers)."""
    import signal

    from profcast.hosting import tracking_server

    os.killpg(tracking_server.read_state(folder).pid, signal.SIGKILL)


def crash_postgres(folder: Path) -> None:
    """Crash PostgreSQL: SIGKILL its postmaster (what the OOM killer does), leaving postmaster.pid behind."""
    import signal

    from profcast.hosting.postgres_cluster import postmaster_pid

    os.kill(postmaster_pid(folder / "postgres"), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["mlflow server", "postgres"])
def test_a_sweep_rides_out_its_tracking_server_or_database_restarting(victim, tmp_path):
    """Killed mid-job and back within MLflow's retries (about 2 minutes): every job still finishes."""
    from profcast.hosting import tracking_server
    from tests.fixtures_scale import finish_sweep, logged_in_as_admin, require_scale, server_folder, start_sweep
    from tests.test_scale import sweep_runs, wait_until_a_job_is_midway

    require_scale()
    from profcast.hosting.model_server import free_loopback_port

    folder = server_folder()
    port = free_loopback_port()
    try:
        state = tracking_server.start(folder, "127.0.0.1", port)
        with logged_in_as_admin(folder):
            experiment, sweep_dir = f"restart-{uuid.uuid4().hex[:6]}", str(tmp_path / "sweep")
            # The embedded data's 9 targets make a job long enough to kill the server midway.
            sweep = start_sweep(
                [
                    "anchor=g3s.xlarge",
                    "regressor=ratio,lr",
                    "log_model=false",
                    f"tracking_uri={state.uri}",
                    f"mlflow_experiment={experiment}",
                    f"hydra.sweep.dir={sweep_dir}",
                ]
            )
            try:
                client = MlflowClient(state.uri)
                wait_until_a_job_is_midway(client, experiment, sweep)
                if victim == "mlflow server":
                    kill_mlflow_server(folder)
                    time.sleep(5)
                    tracking_server.start(folder, "127.0.0.1", port)  # PostgreSQL is restarted with it
                else:
                    crash_postgres(folder)
                    time.sleep(5)
                    tracking_server.start(folder, "127.0.0.1", port)  # PostgreSQL again, on the same port
            finally:
                output = finish_sweep(sweep)
            assert sweep.returncode == 0, output[-3000:]
            parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
            assert sorted(job.data.params["regressor"] for job in jobs) == ["lr", "ratio"]
            assert {run.info.status for run in everything} == {"FINISHED"}
            assert all(len(client.get_run(job.info.run_id).data.metrics) > 0 for job in jobs)
    finally:
        tracking_server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_store_fault_is_one_line_and_a_bug_is_not(tracking_uri, capsys):
    import errno

    import mlflow

    from profcast.tracking.run_endings import run_job
    from profcast.tracking.store_faults import store_fault

    full = OSError(errno.ENOSPC, "No space left on device", "/tmp/model.skops", None, "/store/mlruns/model.skops")
    assert store_fault(RuntimeError("logging failed")) is None  # a bug keeps its traceback
    wrapped = RuntimeError("logging failed")
    wrapped.__cause__ = full
    assert store_fault(wrapped).startswith("no space left on the device writing /store/mlruns/model.skops")
    assert store_fault(
        Exception("API request to endpoint /api/2.0/mlflow/runs/update failed with error code 503 != 200")
    ).startswith("the tracking server stopped answering")
    assert store_fault(Exception("(psycopg2.OperationalError) server closed the connection unexpectedly")).startswith(
        "the tracking server lost its database connection"
    )

    opened = []

    def train_until_the_disk_fills(cfg):
        opened.append(mlflow.start_run().info.run_id)
        mlflow.start_run(nested=True)
        raise wrapped

    assert run_job(train_until_the_disk_fills, None) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("profcast: error: no space left on the device writing /store/mlruns/model.skops")
    assert lines[-1].endswith("open runs ended FAILED")
    assert mlflow.get_run(opened[0]).info.status == "FAILED" and mlflow.active_run() is None
