"""A sweep's runs seen from any process or host: find the parent run, end what a dead job left open.

Jobs of a parallel launcher (``hydra/launcher=joblib``) run in worker processes, those of
``hydra/launcher=ray`` maybe on other hosts: an environment variable set by the launcher does not
reach them. The parent run is tagged with the sweep folder (``hydra.sweep.dir``), which every job
of the sweep knows from its own Hydra config, so a job looks its parent up in the store.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from profcast.errors import ProfcastError

log = logging.getLogger(__name__)

SWEEP_DIR_TAG = "profcast.sweep_dir"
PARENT_TAG = "mlflow.parentRunId"


def find_parent_run(experiment_id: str, sweep_dir: str) -> str | None:
    """The newest RUNNING parent run tagged with this sweep folder, or None."""
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    runs = MlflowClient().search_runs(
        [experiment_id],
        f"tags.`{SWEEP_DIR_TAG}` = '{sweep_dir}' AND attributes.status = 'RUNNING'",
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


def job_parent_run(experiment_id: str, environment_run_id: str | None) -> str | None:
    """The parent run of the job running now: looked up by its sweep folder under -m, else the environment's."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415  Hydra only where a config is composed or an option built
    from hydra.types import RunMode  # noqa: PLC0415  Hydra only where a config is composed or an option built

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        found = find_parent_run(experiment_id, str(HydraConfig.get().sweep.dir))
        if found:
            return found
    return environment_run_id


def child_runs(parent_run_id: str) -> list:
    """Every run directly under ``parent_run_id``, of any status."""
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    client = MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs, page_token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=1000, page_token=page_token
        )
        runs.extend(page)
        page_token = page.token
        if not page_token:
            return runs


def end_sweep(parent_run_id: str, status: str) -> list[str]:
    """End a sweep's parent run with ``status`` (FINISHED when the launcher returned every job, else
    FAILED or KILLED).

    A job whose process died (killed worker, lost host) left its run and its target runs
    RUNNING; they are ended KILLED, so no run of an ended sweep stays RUNNING. Returns their ids.
    """
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    client = MlflowClient()
    killed = []
    for job in child_runs(parent_run_id):
        if job.info.status == "RUNNING":
            for target in child_runs(job.info.run_id):
                if target.info.status == "RUNNING":
                    client.set_terminated(target.info.run_id, "KILLED")
            client.set_terminated(job.info.run_id, "KILLED")
            killed.append(job.info.run_id)
            log.warning(
                "sweep: job run %s (%s) never ended (its process died); marked KILLED",
                job.info.run_id,
                job.info.run_name,
            )
    client.set_terminated(parent_run_id, status)
    return killed


def check_launcher_store(config: DictConfig, tracking_uri: str) -> None:
    """Refuse a SQLite store with a Ray launcher that joins a cluster: other hosts cannot share the file.

    A local Ray cluster (no ``hydra.launcher.ray.init.address``) and joblib workers run on this host
    and share the file, whose schema the sweep callback creates before any job starts.
    """
    launcher = str(config.hydra.launcher.get("_target_", ""))
    if "RayLauncher" not in launcher or not tracking_uri.startswith("sqlite:"):
        return
    address = (config.hydra.launcher.get("ray") or {}).get("init", {}).get("address")
    if address:
        raise ProfcastError(
            f"tracking_uri={tracking_uri} is a file that jobs on other Ray hosts cannot reach; start the "
            "tracking server (make tracking-server) and pass tracking_uri=http://<host>:<port>"
        )
