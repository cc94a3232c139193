"""Which MLflow store runs go to, and the experiment they go into.

The default is MLflow 3's own: ``sqlite:///mlflow.db`` in the working directory, so ``mlflow ui``,
``mlflow models serve``, ``mlflow run .`` and ``mlflow.search_runs()`` started in the same folder
find the runs without flags. Artifacts go to ``mlruns/`` beside the database. See docs/tracking.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # = mlflow.store.tracking.DEFAULT_TRACKING_URI
ARTIFACT_FOLDER = "mlruns"  # = MLflow's default artifact root, beside the database


def tracking_uri(configured: str | None) -> str:
    """MLFLOW_TRACKING_URI when set, else the configured URI, else MLflow's default ``sqlite:///mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI


def use_store(configured_uri: str | None) -> str:
    """Point MLflow at the store (MLFLOW_TRACKING_URI or the configured one) without creating anything."""
    import mlflow

    uri = tracking_uri(configured_uri)
    mlflow.set_tracking_uri(uri)
    return uri


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment of a SQLite store keeps its artifacts: ``<database folder>/mlruns/<experiment>``.

    None for other stores (a server or database decides itself).
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment) or "experiment"
    return (database.parent / ARTIFACT_FOLDER / folder).resolve().as_uri()


def configure_tracking(configured_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store, create it and the experiment if needed; return the experiment id."""
    import mlflow

    uri = tracking_uri(configured_uri)
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()
        database.parent.mkdir(parents=True, exist_ok=True)
        # Absolute, as MLflow itself resolves its default: MLflow caches stores by URI text, so a
        # relative one would keep pointing at the first folder's database after a chdir.
        uri = f"sqlite:///{database}"
    mlflow.set_tracking_uri(uri)
    launched_run = os.environ.get("MLFLOW_RUN_ID")
    if launched_run:  # under `mlflow run`, stay in the experiment of the run it opened for us
        return mlflow.get_run(launched_run).info.experiment_id
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifact_location(uri, experiment))
