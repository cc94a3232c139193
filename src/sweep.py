"""A Hydra callback that opens one MLflow parent run per -m sweep, for the jobs to nest under."""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

PARENT_RUN_ENV = "PROFCAST_PARENT_RUN_ID"  # the open sweep's parent run, read by src.train


class SweepParentRun(Callback):
    """Creates the parent run before the first job; after the last, registers the best job and closes it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        from src.errors import ProfcastError
        from src.sweep_runs import SWEEP_DIR_TAG, check_launcher_store, refuse
        from src.tracking import configure_tracking, tracking_uri

        try:
            check_launcher_store(config, tracking_uri(config.tracking_uri))
        except ProfcastError as error:
            refuse(error)
        # Also creates a SQLite store's schema here, once, before parallel jobs could race to.
        experiment_id = configure_tracking(config.tracking_uri, config.experiment)
        run = MlflowClient().create_run(
            experiment_id,
            run_name=f"sweep {config.anchor}",
            tags={SWEEP_DIR_TAG: str(config.hydra.sweep.dir)},  # how jobs in other processes find it
        )
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        # A failed job or a dead worker makes the launcher raise and skips on_multirun_end.
        atexit.register(_end_unfinished_sweep, run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_id = os.environ.pop(PARENT_RUN_ENV, None)
        if run_id:
            from mlflow.exceptions import MlflowException

            from src.errors import ProfcastError
            from src.registry import register_sweep
            from src.sweep_runs import end_sweep

            try:
                register_sweep(config, run_id)  # best job per anchor -> profcast-<anchor>@champion
            except (MlflowException, ProfcastError) as error:  # the trained jobs stay logged either way
                logging.getLogger("profcast").error("registry: could not register the sweep's best job: %s", error)
            atexit.unregister(_end_unfinished_sweep)
            end_sweep(run_id, completed=True)  # runs of jobs that died (and were retried) end KILLED


def _end_unfinished_sweep(run_id: str) -> None:
    from src.sweep_runs import end_sweep

    end_sweep(run_id, completed=False)
    logging.getLogger("profcast").error("sweep did not complete: parent run %s marked FAILED", run_id)


def fail_sweep_parent_run() -> None:
    """Mark the open sweep's parent run FAILED (a job stopped the sweep on bad input)."""
    run_id = os.environ.pop(PARENT_RUN_ENV, None)
    if run_id:
        from mlflow import MlflowClient

        MlflowClient().set_terminated(run_id, "FAILED")
