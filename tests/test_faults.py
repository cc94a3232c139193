"""Faults of the store and the machine: a truncated store file, a disk that fills up while logging.
(The tracking server or its database killed mid-sweep: tests/test_server_crash.py.)

Each must end in one error line, leave no run RUNNING, keep the earlier runs, and a rerun must complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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
