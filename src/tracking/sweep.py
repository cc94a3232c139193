"""A Hydra callback that opens one MLflow parent run per -m sweep, for the jobs to nest under."""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "PROFCAST_PARENT_RUN_ID"  # the open sweep's parent run, read by the sweep's jobs


def sweep_parent_run_id() -> str | None:
    """The parent run of the sweep this job belongs to, or None outside a sweep."""
    return os.environ.get(PARENT_RUN_ENV)


class SweepParentRun(Callback):
    """Creates the parent run before the first job; after the last, registers the best job and closes it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        from src.tracking.store import configure_tracking

        experiment_id = configure_tracking(config.tracking_uri, config.mlflow_experiment)
        swept = " ".join(str(item) for item in (config.hydra.overrides.get("task") or []))
        run = MlflowClient().create_run(
            experiment_id,
            run_name=f"sweep {config.anchor}: {swept}".strip().rstrip(":"),  # the UI's one row for the sweep says what varied
            tags={"profcast.sweep_dir": str(config.hydra.sweep.dir), "profcast.run_kind": "sweep",
                  "mlflow.note.content": f"Hydra sweep `{swept}`; expand the row for its jobs."},
        )
        os.environ[PARENT_RUN_ENV] = run.info.run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_id = os.environ.pop(PARENT_RUN_ENV, None)
        if run_id:
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException

            from src.errors import ProfcastError
            from src.serve.registry import register_sweep

            try:
                register_sweep(config, run_id)  # best job per anchor -> profcast-<anchor>@champion
            except (MlflowException, ProfcastError) as error:  # the trained jobs stay logged either way
                log.error("registry: could not register the sweep's best job: %s", error)
            MlflowClient().set_terminated(run_id, "FINISHED")


def fail_sweep_parent_run() -> None:
    """Mark the open sweep's parent run FAILED (a job stopped the sweep on bad input)."""
    run_id = os.environ.pop(PARENT_RUN_ENV, None)
    if run_id:
        from mlflow import MlflowClient

        MlflowClient().set_terminated(run_id, "FAILED")
