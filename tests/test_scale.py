"""Sweeps whose jobs run in other processes: parent-run lookup, dead jobs, the SQLite guard, real launchers.

The launcher tests run real sweeps (joblib workers, a local Ray cluster) against a real
PostgreSQL-backed MLflow server; they skip without the `scale` extra or the PostgreSQL binaries.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow import MlflowClient
from omegaconf import open_dict

from profcast.hosting.model_server import free_loopback_port
from profcast.tracking.sweep_runs import SWEEP_DIR_TAG, end_sweep, job_parent_run
from profcast.train import train
from tests.fixtures_scale import (
    finish_sweep,
    ray_job_workers,
    ray_overrides,
    require_scale,
    session_processes,
    start_sweep,
    worker_environment,
)


@pytest.fixture
def multirun_job(tmp_path):
    """Make this process look like a job of a -m sweep into tmp_path/sweep (as a launcher's worker does)."""
    sweep_dir = str(tmp_path / "sweep")
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(config_name="train", overrides=[f"hydra.sweep.dir={sweep_dir}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    yield sweep_dir
    HydraConfig.instance().cfg = None


def test_a_job_in_another_process_finds_its_parent_by_the_sweep_folder(
    tracking_uri, multirun_job, profile_csv, compose_config
):
    mlflow.set_tracking_uri(tracking_uri)  # what configure_tracking does in a job
    client = MlflowClient()
    experiment_id = client.create_experiment("profcast")
    other_sweep = client.create_run(experiment_id, tags={SWEEP_DIR_TAG: multirun_job + "-other"}).info.run_id
    ended_sweep = client.create_run(experiment_id, tags={SWEEP_DIR_TAG: multirun_job}).info.run_id
    client.set_terminated(ended_sweep, "FINISHED")
    parent = client.create_run(experiment_id, tags={SWEEP_DIR_TAG: multirun_job}).info.run_id
    # No environment variable reaches the worker: the lookup alone finds the open sweep of this folder.
    assert job_parent_run(experiment_id, None) == parent
    train(
        compose_config(
            ["data=file", f"data.path={profile_csv}", "anchor=slow.gpu", "regressor=ratio", "log_model=false"]
        )
    )
    jobs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(jobs) == 1 and jobs[0].data.params["regressor"] == "ratio"
    for not_this_sweep in (other_sweep, ended_sweep):
        assert not client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{not_this_sweep}'")


def test_ending_a_sweep_kills_the_runs_a_dead_job_left_open(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    experiment_id = client.create_experiment("profcast")
    parent = client.create_run(experiment_id).info.run_id
    finished_job = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(finished_job, "FINISHED")
    dead_job = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    dead_target = client.create_run(experiment_id, tags={"mlflow.parentRunId": dead_job}).info.run_id
    assert end_sweep(parent, "FAILED") == [dead_job]
    status = {run_id: client.get_run(run_id).info.status for run_id in (parent, finished_job, dead_job, dead_target)}
    assert status == {parent: "FAILED", finished_job: "FINISHED", dead_job: "KILLED", dead_target: "KILLED"}


def test_ray_launcher_joining_a_cluster_refuses_a_sqlite_store(run_cli, tracking_uri):
    require_scale()
    command = [
        sys.executable,
        "-m",
        "profcast.train",
        "-m",
        "hydra/launcher=ray",
        f"+hydra.launcher.ray.init.address=127.0.0.1:{free_loopback_port()}",  # any address: refused before joining
        "regressor=ratio,lr",
    ]
    done = run_cli(command[1:], env=worker_environment(MLFLOW_TRACKING_URI=tracking_uri), timeout=300)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("profcast: error: tracking_uri=sqlite:") and "tracking server" in message
    assert "Traceback" not in done.stderr
    assert MlflowClient(tracking_uri).search_experiments(filter_string="name = 'profcast'") == []  # no parent run made


def sweep_runs(client: MlflowClient, experiment: str, sweep_dir: str) -> tuple:
    """The parent run of the sweep into sweep_dir, its job runs and every run of the experiment."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    everything = client.search_runs([experiment_id], max_results=1000)
    parents = [run for run in everything if run.data.tags.get(SWEEP_DIR_TAG) == sweep_dir]
    assert len(parents) == 1
    jobs = [run for run in everything if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], jobs, everything


def assert_champion_is_the_best_job(client: MlflowClient, anchor: str, jobs: list) -> None:
    finished = [job for job in jobs if job.info.status == "FINISHED"]
    best = min(finished, key=lambda job: job.data.metrics["mean_wape"])
    champion = client.get_model_version_by_alias(f"profcast-{anchor}", "champion")
    assert champion.run_id == best.info.run_id
    mlflow.set_tracking_uri(client.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/profcast-{anchor}@champion")  # artifacts come through the server
    assert model.metadata.run_id == best.info.run_id


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "ray"])
def test_parallel_sweep_on_the_postgres_server_logs_every_job_and_registers_the_champion(
    launcher, postgres_tracking_server, ray_temp_dir, profile_csv, tmp_path
):
    experiment = f"scale-{launcher}-{uuid.uuid4().hex[:6]}"
    sweep_dir = str(tmp_path / "sweep")
    launcher_overrides = (
        ray_overrides(ray_temp_dir) if launcher == "ray" else ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    )
    overrides = [
        *launcher_overrides,
        "data=file",
        f"data.path={profile_csv}",
        "anchor=slow.gpu",
        "regressor=ratio,lr,knn",
        f"tracking_uri={postgres_tracking_server}",
        f"mlflow_experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    sweep = start_sweep(overrides)
    output = finish_sweep(sweep)
    assert sweep.returncode == 0, output[-3000:]
    client = MlflowClient(postgres_tracking_server)
    parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
    assert sorted(job.data.params["regressor"] for job in jobs) == ["knn", "lr", "ratio"]
    assert len(everything) == 1 + 3 * (1 + 2)  # parent, 3 jobs, 2 targets each
    assert {run.info.status for run in everything} == {"FINISHED"}
    assert_champion_is_the_best_job(client, "slow.gpu", jobs)


def wait_until_a_job_is_midway(client: MlflowClient, experiment: str, sweep: subprocess.Popen, timeout_s: float = 300):
    """Block until some job run is RUNNING with at least one target done; fail if the sweep ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sweep.poll() is None:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            running = [
                run
                for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'")
                if "sweep" not in (run.info.run_name or "")
            ]
            for job in running:
                done = client.search_runs(
                    [found.experiment_id],
                    f"tags.`mlflow.parentRunId` = '{job.info.run_id}' AND attributes.status = 'FINISHED'",
                )
                if done:
                    return job
        time.sleep(1)
    pytest.fail("no job reached its second target before the sweep ended")


def sweep_with_a_worker_killed_midway(launcher_overrides: list[str], find_workers, tracking_uri: str, sweep_dir: str):
    """Start a ratio,lr sweep on the embedded data, kill -9 one worker once a job is midway, wait for the end.

    Returns the finished sweep process, its output, a client and the experiment name.
    """
    experiment = f"scale-kill-{uuid.uuid4().hex[:6]}"
    # The embedded data's 9 targets and its size what-if make a job long enough to kill its worker midway (a
    # job without the what-if, 6 s, was over before the kill landed in one CI run out of two).
    overrides = [
        *launcher_overrides,
        "anchor=g3s.xlarge",
        "regressor=ratio,lr",
        "log_model=false",
        f"tracking_uri={tracking_uri}",
        f"mlflow_experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    sweep = start_sweep(overrides)
    client = MlflowClient(tracking_uri)
    try:
        wait_until_a_job_is_midway(client, experiment, sweep)
        workers = find_workers(sweep.pid)
        assert workers, "no worker process is running a job"
        subprocess.run(["kill", "-9", str(workers[0])], check=True)
    finally:
        output = finish_sweep(sweep)
    return sweep, output, client, experiment


@pytest.mark.slow
def test_a_killed_ray_worker_leaves_no_run_running_and_its_job_is_retried(
    postgres_tracking_server, ray_temp_dir, tmp_path
):
    sweep_dir = str(tmp_path / "sweep")
    sweep, output, client, experiment = sweep_with_a_worker_killed_midway(
        ray_overrides(ray_temp_dir), ray_job_workers, postgres_tracking_server, sweep_dir
    )
    assert sweep.returncode == 0, output[-3000:]  # Ray re-ran the job whose worker died
    parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
    assert "RUNNING" not in {run.info.status for run in everything}
    assert parent.info.status == "FINISHED"
    killed = [job for job in jobs if job.info.status == "KILLED"]
    finished = [job for job in jobs if job.info.status == "FINISHED"]
    assert len(killed) == 1 and sorted(job.data.params["regressor"] for job in finished) == ["lr", "ratio"]


@pytest.mark.slow
def test_joblib_workers_share_a_new_sqlite_store_without_losing_a_job(profile_csv, tmp_path):
    require_scale()
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"  # does not exist yet: the sweep callback creates it
    sweep_dir = str(tmp_path / "sweep")
    sweep = start_sweep(
        [
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "data=file",
            f"data.path={profile_csv}",
            "anchor=slow.gpu",
            "regressor=ratio,lr,knn,dt",
            "log_model=false",
            f"tracking_uri={uri}",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    output = finish_sweep(sweep)
    assert sweep.returncode == 0, output[-3000:]
    parent, jobs, everything = sweep_runs(MlflowClient(uri), "profcast", sweep_dir)
    assert sorted(job.data.params["regressor"] for job in jobs) == ["dt", "knn", "lr", "ratio"]
    assert len(everything) == 1 + 4 * 3 and {run.info.status for run in everything} == {"FINISHED"}


def loky_workers(session: int) -> list[int]:
    """Ids of the joblib (loky) worker processes of the sweep in `session`."""
    pids = []
    for pid in session_processes(session):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "loky" in command and "resource_tracker" not in command:
            pids.append(pid)
    return pids


@pytest.mark.slow
def test_a_killed_joblib_worker_fails_the_sweep_and_leaves_no_run_running(postgres_tracking_server, tmp_path):
    sweep_dir = str(tmp_path / "sweep")
    sweep, output, client, experiment = sweep_with_a_worker_killed_midway(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], loky_workers, postgres_tracking_server, sweep_dir
    )
    assert sweep.returncode != 0  # joblib does not retry: the sweep stops
    parent, jobs, everything = sweep_runs(client, experiment, sweep_dir)
    assert "RUNNING" not in {run.info.status for run in everything}, output[-3000:]
    assert parent.info.status == "FAILED" and "KILLED" in {job.info.status for job in jobs}


def test_a_dataset_another_job_registered_at_the_same_moment_is_still_logged(tracking_uri, monkeypatch):
    """Parallel jobs race to insert the same dataset; the loser's insert breaks the unique key and is retried."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from profcast.tracking import runs

    dataset = mlflow.data.from_pandas(pd.DataFrame({"a": [1.0, 2.0]}), name="profiles-race")
    real_log_input, calls = mlflow.log_input, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise MlflowException(
                "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name"
            )
        return real_log_input(*args, **kwargs)

    monkeypatch.setattr(runs.mlflow, "log_input", racing)
    with mlflow.start_run() as run:
        runs.log_dataset_input(dataset)
    assert len(calls) == 2
    assert [entry.dataset.name for entry in mlflow.get_run(run.info.run_id).inputs.dataset_inputs] == ["profiles-race"]

    monkeypatch.setattr(
        runs.mlflow, "log_input", lambda *args, **kwargs: (_ for _ in ()).throw(MlflowException("store is down"))
    )
    with mlflow.start_run(), pytest.raises(MlflowException, match="store is down"):
        runs.log_dataset_input(dataset)  # any other failure is not retried away
