"""Which MLflow store runs go to, and the experiment they go into."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def tracking_uri(configured: str | None) -> str:
    """MLFLOW_TRACKING_URI when set, else the configured URI (a SQLite file inside mlruns/)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI


def use_store(configured_uri: str | None) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI or the configured one) without creating anything."""
    import mlflow

    uri = tracking_uri(configured_uri)
    mlflow.set_tracking_uri(uri)
    return uri


def configure_tracking(configured_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store, create it and the experiment if needed; return the experiment id.

    A SQLite store keeps its artifacts in an `artifacts/` folder beside the database.
    """
    import mlflow

    uri = tracking_uri(configured_uri)
    artifact_location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (database.parent / "artifacts").resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    launched_run = os.environ.get("MLFLOW_RUN_ID")
    if launched_run:  # under `mlflow run`, stay in the experiment of the run it opened for us
        return mlflow.get_run(launched_run).info.experiment_id
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifact_location)
