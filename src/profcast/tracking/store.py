"""Which MLflow store runs go to, and the experiment they go into.

One rule picks the store: ``tracking_uri=`` given in the config or on the command line, else the
``MLFLOW_TRACKING_URI`` environment variable, else MLflow 3's own default ``sqlite:///mlflow.db``
in the working directory, so ``mlflow ui``, ``mlflow models serve``, ``mlflow run .`` and
``mlflow.search_runs()`` started in the same folder find the runs without flags. Artifacts go to
``mlruns/`` beside the database. Each job logs one line naming the store it uses and why.
See docs/tracking.md.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from profcast.errors import ProfcastError, first_line
from profcast.tracking.credentials import refused_login_message, use_server_credentials
from profcast.tracking.store_checks import check_scheme, prepare_sqlite_store, probe_server, sqlite_path, store_lock

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # = mlflow.store.tracking.DEFAULT_TRACKING_URI
ARTIFACT_FOLDER = "mlruns"  # = MLflow's default artifact root, beside the database


def tracking_uri(configured: str | None) -> str:
    """The configured URI when given, else MLFLOW_TRACKING_URI when set, else MLflow's default store."""
    return chosen_store(configured)[0]


def chosen_store(configured: str | None) -> tuple[str, str]:
    """The store's URI and where it came from (for the log line)."""
    environment = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        if environment and environment != configured:
            log.warning("tracking_uri=%s wins over MLFLOW_TRACKING_URI=%s", configured, environment)
        return str(configured), "tracking_uri="
    if environment:
        return environment, "MLFLOW_TRACKING_URI"
    return DEFAULT_TRACKING_URI, "default"


def use_store(configured_uri: str | None) -> str:
    """Point MLflow at the store without creating anything; a server that does not answer fails in seconds."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    uri = tracking_uri(configured_uri)
    if check_scheme(uri) in ("http", "https"):
        probe_server(uri)  # a dead server fails in seconds, not after MLflow's retries
        use_server_credentials()
    mlflow.set_tracking_uri(uri)
    return uri


def check_experiment_name(experiment) -> None:
    """An MLflow experiment name must not be empty (``mlflow_experiment=`` was ``experiment=`` before)."""
    if not experiment or not str(experiment).strip():
        raise ProfcastError(
            "mlflow_experiment is empty; name the MLflow experiment, e.g. mlflow_experiment=profcast "
            "(the key was called 'experiment' before; experiment= now picks a conf/experiment option)"
        )


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
    """Point MLflow at the store, create it and the experiment if needed; return the experiment id.

    The store is checked first (scheme, server answering, SQLite schema), so a bad one is a
    one-line error within seconds; a new SQLite store and its experiment are created under a lock.
    """
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    check_experiment_name(experiment)
    uri, source = chosen_store(configured_uri)
    scheme = check_scheme(uri)
    if scheme == "sqlite":
        # Absolute, as MLflow itself resolves its default: MLflow caches stores by URI text, so a
        # relative one would keep pointing at the first folder's database after a chdir.
        uri = f"sqlite:///{sqlite_path(uri).resolve()}"
    log.info("tracking store: %s (from %s)", uri, source)
    if scheme in ("http", "https"):
        probe_server(uri)
        login = use_server_credentials()
        log.info(
            "tracking server login: %s",
            f"from {login}" if login else "none found (MLflow's ~/.mlflow/credentials, if any)",
        )
    mlflow.set_tracking_uri(uri)
    launched_run = os.environ.get("MLFLOW_RUN_ID")
    try:
        if launched_run:  # under `mlflow run`, stay in the experiment of the run it opened for us
            return mlflow.get_run(launched_run).info.experiment_id
        if scheme != "sqlite":
            return _experiment_id(experiment, None)
        database = sqlite_path(uri)
        with store_lock(database) if database.parent.is_dir() else _lock_after_mkdir(database):
            prepare_sqlite_store(uri)
            # Get-or-create under the lock too: two sweeps starting together must not both create it.
            return _experiment_id(experiment, artifact_location(uri, experiment))
    except ProfcastError:
        raise
    except Exception as error:  # MLflow, SQLAlchemy and requests raise many types; all are the store's problem
        raise ProfcastError(refused_login_message(uri, error) or f"tracking store {uri}: {first_line(error)}") from None


def _lock_after_mkdir(database: Path):

    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ProfcastError(
            f"tracking store folder {database.parent} cannot be created ({error.strerror}); "
            "pick a writable one with tracking_uri=sqlite:///PATH/mlflow.db"
        ) from None
    return store_lock(database)


def _experiment_id(experiment: str, artifact_location: str | None) -> str:
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ProfcastError(
                f"MLflow experiment {experiment!r} is deleted; restore it (mlflow experiments restore) "
                "or pick another name with mlflow_experiment=NAME"
            )
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifact_location)
