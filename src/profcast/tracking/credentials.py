"""How a job, a worker or a command finds the login for an authenticated tracking server.

The shared server (``profcast.hosting.tracking_server``) always runs MLflow's basic-auth app and
writes its admin login, 0600, to ``credentials`` in its data folder, in MLflow's own
credentials-file format (``[mlflow]`` with ``mlflow_tracking_username`` and
``mlflow_tracking_password``). For an http(s) store the login is found by one rule, first match wins:

1. ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` in the environment (MLflow's own);
2. the file named by ``PROFCAST_CREDENTIALS_FILE``;
3. ``credentials`` in the server's data folder (``$PROFCAST_SERVER_DIR``, default
   ``<repo>/.cache/profcast/server``) when this account can read it;
4. MLflow's own ``~/.mlflow/credentials``.

A login found by 2 or 3 is put into the environment, so the processes a job starts inherit it.
"""

from __future__ import annotations

import configparser
import io
import os
from pathlib import Path

from profcast.config import REPO_ROOT
from profcast.errors import ProfcastError, first_line

DEFAULT_SERVER_DIR = REPO_ROOT / ".cache" / "profcast" / "server"
CREDENTIALS_FILE = "credentials"
USERNAME_KEY, PASSWORD_KEY = "mlflow_tracking_username", "mlflow_tracking_password"  # MLflow's file keys


def server_dir() -> Path:
    """The shared server's data folder: $PROFCAST_SERVER_DIR, else <repo>/.cache/profcast/server."""
    return Path(os.environ.get("PROFCAST_SERVER_DIR") or DEFAULT_SERVER_DIR).resolve()


def write_private(path: Path, text: str) -> None:
    """Write text to a file created 0600 (never readable by others, not even for a moment)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT


def ini_text(section: str, values: dict) -> str:
    """One-section INI text (what configparser writes)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser[section] = values
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def read_ini(path: Path, section: str) -> dict:
    """One section of an INI file as a dict ({} when absent); a one-line error when unreadable."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as error:
        raise ProfcastError(f"{path} is unreadable ({getattr(error, 'strerror', None) or first_line(error)})") from None
    return dict(parser[section]) if parser.has_section(section) else {}


def write_credentials(path: Path, username: str, password: str) -> None:
    """A credentials file (0600) in MLflow's format: [mlflow] mlflow_tracking_username / _password."""
    write_private(path, ini_text("mlflow", {USERNAME_KEY: username, PASSWORD_KEY: password}))


def read_credentials(path: Path) -> tuple[str, str]:
    """User name and password from a credentials file; a one-line error when it lacks them."""
    section = read_ini(path, "mlflow")
    username, password = section.get(USERNAME_KEY), section.get(PASSWORD_KEY)
    if not username or not password:
        raise ProfcastError(f"credentials file {path} has no [mlflow] {USERNAME_KEY} and {PASSWORD_KEY}")
    return username, password


def credentials_file() -> Path | None:
    """The credentials file rule 2 or 3 picks (module docstring), or None."""
    named = os.environ.get("PROFCAST_CREDENTIALS_FILE")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ProfcastError(
                f"PROFCAST_CREDENTIALS_FILE={named} does not exist; point it at the tracking server's "
                f"'{CREDENTIALS_FILE}' file (in its data folder) or a copy of it"
            )
        return path
    path = server_dir() / CREDENTIALS_FILE
    return path if path.is_file() and os.access(path, os.R_OK) else None


def use_server_credentials() -> str | None:
    """Put the login for an http(s) tracking server into the environment by the rule above; say where it came from."""
    if os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return "MLFLOW_TRACKING_USERNAME"
    path = credentials_file()
    if path is None:
        return None
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = read_credentials(path)
    return str(path)


def refused_login_message(uri: str, error: Exception) -> str | None:
    """The one-line error for a server that refused the login (HTTP 401) or the action (403), else None."""
    text = str(error)
    if "error code 401" in text:
        return (
            f"tracking server {uri} refused the login (HTTP 401); set MLFLOW_TRACKING_USERNAME and "
            f"MLFLOW_TRACKING_PASSWORD, or PROFCAST_CREDENTIALS_FILE=<the server folder>/{CREDENTIALS_FILE} (docs/cluster.md)"
        )
    if "error code 403" in text:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        return (
            f"tracking server {uri} does not let {user} do this (HTTP 403); ask its admin for EDIT or MANAGE permission"
        )
    return None
