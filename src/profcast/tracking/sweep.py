"""A Hydra callback that opens one MLflow parent run per -m sweep, for the jobs to nest under."""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from profcast.errors import ProfcastError, print_error
from profcast.stops import install_stop_handlers, stop_status
from profcast.tracking.run_endings import end_active_runs
from profcast.tracking.store import configure_tracking, tracking_uri
from profcast.tracking.sweep_runs import SWEEP_DIR_TAG, check_launcher_store, end_sweep, job_parent_run

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "PROFCAST_PARENT_RUN_ID"  # the open sweep's parent run, set in the launching process
# Steps taken just before the sweep's parent run ends, at the end or at exit after a stop, each called
# with (config, parent run id): registration's callback adds the champion here (profcast.champions).
_before_parent_run_ends: list = []


def before_parent_run_ends(step) -> None:
    """Call ``step(config, parent_run_id)`` before this process's sweep parent run ends (once per step)."""
    if step not in _before_parent_run_ends:
        _before_parent_run_ends.append(step)


def sweep_parent_run_id(experiment_id: str) -> str | None:
    """The parent run of the sweep this job belongs to (found by its sweep folder in any worker
    process or host), or None outside a sweep."""

    return job_parent_run(experiment_id, os.environ.get(PARENT_RUN_ENV))


class SweepParentRun(Callback):
    """Creates the parent run before the first job; after the last, takes the steps registered with
    ``before_parent_run_ends`` (the champion's registration) and closes it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

        try:
            check_launcher_store(config, tracking_uri(config.tracking_uri))
            # Also creates a SQLite store's schema here, once, before parallel jobs could race to.
            experiment_id = configure_tracking(config.tracking_uri, config.mlflow_experiment)
        except ProfcastError as error:  # a bad store stops the sweep before any job, in one line
            print_error(error)
            sys.exit(2)
        swept = " ".join(str(item) for item in (config.hydra.overrides.get("task") or []))
        run = MlflowClient().create_run(
            experiment_id,
            run_name=f"sweep {config.anchor}: {swept}".strip().rstrip(
                ":"
            ),  # the UI's one row for the sweep says what varied
            tags={
                SWEEP_DIR_TAG: str(config.hydra.sweep.dir),  # how jobs in other processes find it
                "profcast.run_kind": "sweep",
                "mlflow.note.content": f"Hydra sweep `{swept}`; expand the row for its jobs.",
            },
        )
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        install_stop_handlers()
        # A sweep stopped early (bad input, Ctrl-C, SIGTERM, a job's bug, a dead worker) never reaches on_multirun_end.
        atexit.register(_end_if_still_open, config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        end_sweep_parent_run(config, "FINISHED")


def end_sweep_parent_run(config: DictConfig, status: str) -> None:
    """Take the steps due before the parent run ends (registering the sweep's best job, where one
    qualifies), then end it with ``status``; runs of jobs whose process died end KILLED."""
    run_id = os.environ.pop(PARENT_RUN_ENV, None)
    if run_id:
        from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

        for step in _before_parent_run_ends:
            try:
                step(config, run_id)
            except (MlflowException, ProfcastError) as error:  # the trained jobs stay logged either way
                log.error("%s: %s", getattr(step, "failure", "a step at the end of the sweep failed"), error)
        end_sweep(run_id, status)
        if status != "FINISHED":
            log.warning("sweep stopped early: parent run %s ended %s", run_id, status)


def _end_if_still_open(config: DictConfig) -> None:
    """At exit: end a parent run the sweep left open, FAILED or KILLED (after a stop signal)."""
    if os.environ.get(PARENT_RUN_ENV):
        status = stop_status()
        end_active_runs(status)
        try:
            end_sweep_parent_run(config, status)
        except Exception as error:  # at exit there is nobody left to raise to
            log.error("could not end the sweep's parent run: %s", error)
