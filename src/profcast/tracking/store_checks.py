"""Check a tracking store before MLflow uses it: scheme known, server answering, SQLite schema ours.

Every problem becomes a one-line ``ProfcastError`` within seconds (MLflow's own client would retry
an unreachable server for minutes, or print a traceback). A new SQLite store is created once,
under a file lock beside the database, so sweeps started together never race on its tables.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import urllib.error
import urllib.request
from contextlib import closing, contextmanager
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

from profcast.errors import ProfcastError, first_line

log = logging.getLogger(__name__)

# Schemes MLflow has a tracking store for (file: only with MLFLOW_ALLOW_FILE_STORE=true).
KNOWN_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")
# A dead server fails within seconds by the probe below, before MLflow's client is used. Once the job
# runs, MLflow's retries (backoff 2, 4, ... 64 s: about two minutes) ride out a server or database
# restart instead of losing the job; past that the job ends in one line (store_faults).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
PROBE_SECONDS = 5.0


def check_scheme(uri: str) -> str:
    """The URI's scheme, or a one-line error naming the accepted ones."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES:
        raise ProfcastError(
            f"tracking URI {uri!r}: unknown scheme {scheme or '(none)'!r}; use sqlite:///PATH/mlflow.db, "
            "http(s)://HOST:PORT of an MLflow server, or a database URI such as postgresql://..."
        )
    return scheme


def probe_server(uri: str) -> None:
    """Ask an http(s) tracking server for /health once, with a short timeout; cap MLflow's retries."""

    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server that is up (a proxy may not know /health)
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ProfcastError(
            f"tracking server {uri} does not answer ({reason}); start it (mlflow server ...) "
            "or pick another store (tracking_uri=... or MLFLOW_TRACKING_URI)"
        ) from None


@contextmanager
def store_lock(database: Path):
    """An exclusive lock on ``<database>.lock``: one process at a time creates or checks the store."""
    lock_path = database.with_name(database.name + ".lock")
    try:
        handle = open(lock_path, "a")
    except OSError as error:
        raise ProfcastError(
            f"tracking store {database}: cannot write beside it ({error.strerror}); "
            "pick a writable folder with tracking_uri=sqlite:///PATH/mlflow.db"
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_sqlite_store(uri: str) -> Path:
    """Make the folder, check the database (writable, a schema this MLflow knows), create it when new.

    Call under ``store_lock``. Returns the database path. An older schema is never migrated
    silently: the error says how to upgrade it.
    """
    database = sqlite_path(uri)
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ProfcastError(
            f"tracking store {uri}: cannot create folder {database.parent} ({error.strerror})"
        ) from None
    if not os.access(database.parent, os.W_OK) or (database.exists() and not os.access(database, os.W_OK)):
        raise ProfcastError(
            f"tracking store {uri} is read-only; pick a writable one with tracking_uri=sqlite:///PATH/mlflow.db"
        )
    revision = schema_revision(database, uri)
    if revision is None:
        _create_store(uri)
        return database
    known, head = mlflow_schema_revisions()
    if revision not in known:
        raise ProfcastError(
            f"tracking store {uri} was written by a newer MLflow (schema {revision}, unknown to mlflow "
            f"{version('mlflow')}); use that MLflow version, or a new store with tracking_uri=sqlite:///PATH/mlflow.db"
        )
    if revision != head:
        raise ProfcastError(
            f"tracking store {uri} has an older MLflow schema ({revision}; this MLflow needs {head}); it is not "
            f"migrated without you: back up {database}, then run: mlflow db upgrade {uri}"
        )
    return database


def broken_store_advice(database: Path) -> str:
    """What to do with a damaged store: nothing here repairs it, and nothing is overwritten."""
    return (
        f"restore it from a backup, or move it aside (mv {database} {database}.broken) and run again to start a new "
        f"store (the artifacts in {database.parent / 'mlruns'} stay)"
    )


def check_not_truncated(database: Path, uri: str) -> None:
    """A one-line error when the file is shorter than its own header says (cut by a full disk or a broken copy).

    SQLite's header gives the page size (offset 16) and, when its change counters at 24 and 92
    agree, the database's size in pages (offset 28): reading 100 bytes costs nothing, unlike an
    integrity check of a large store.
    """
    with open(database, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return  # sqlite3 itself says what it is not
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, counter, valid_for = (int.from_bytes(header[at : at + 4], "big") for at in (28, 24, 92))
    expected, actual = page_size * pages, database.stat().st_size
    if counter == valid_for and pages and actual < expected:
        raise ProfcastError(
            f"tracking store {uri} is truncated: {actual:,} of its {expected:,} bytes are there "
            f"(a full disk or an interrupted copy?); {broken_store_advice(database)}"
        )


def sqlite_path(uri: str) -> Path:
    """The database file of a sqlite:/// URI."""
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def schema_revision(database: Path, uri: str) -> str | None:
    """The store's alembic schema revision, or None for a new (missing or empty) database."""
    if not database.exists() or database.stat().st_size == 0:
        return None
    check_not_truncated(database, uri)
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
            if not tables:
                return None
            if "alembic_version" not in tables:
                raise ProfcastError(
                    f"tracking store {uri}: a SQLite database but not an MLflow store (no alembic_version table)"
                )
            row = connection.execute("select version_num from alembic_version").fetchone()
    except sqlite3.DatabaseError as error:
        raise ProfcastError(
            f"tracking store {uri}: not a readable SQLite database ({error}); {broken_store_advice(database)}"
        ) from None
    if row is None:
        raise ProfcastError(
            f"tracking store {uri}: its schema version is empty (an interrupted creation?); "
            "remove the file or pick another store"
        )
    return row[0]


def mlflow_schema_revisions() -> tuple[set[str], str]:
    """Every schema revision this MLflow knows, and the newest."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415  MLflow's migrations, only when a store's schema is checked
    from mlflow.store.db.utils import _get_alembic_config, _get_latest_schema_revision  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    return {revision.revision for revision in script.walk_revisions()}, _get_latest_schema_revision()


def _create_store(uri: str) -> None:
    """Create the store's tables now, while the lock keeps every other process out."""
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    log.info("creating a new MLflow store at %s", uri)
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # SQLAlchemy and MLflow raise many types; all mean the same to the user
        raise ProfcastError(f"tracking store {uri}: cannot be created ({first_line(error)})") from None
