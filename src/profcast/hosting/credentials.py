"""The shared tracking server's own secrets, generated on its first start and kept 0600 in its data folder.

credentials      the MLflow admin login, in MLflow's credentials-file format (jobs read it:
                 profcast.tracking.credentials says how; copy it to another host as
                 ~/.mlflow/credentials or name it with PROFCAST_CREDENTIALS_FILE)
secrets.ini      the PostgreSQL password and the basic-auth app's Flask secret key (the server only)
basic_auth.ini   the basic-auth app's settings; its user store is basic_auth.db beside it
"""

from __future__ import annotations

import secrets
from pathlib import Path

from profcast.tracking.credentials import (
    CREDENTIALS_FILE,
    ini_text,
    read_credentials,
    read_ini,
    write_credentials,
    write_private,
)

SECRETS_FILE = "secrets.ini"
AUTH_CONFIG_FILE = "basic_auth.ini"
AUTH_DATABASE = "basic_auth.db"
ADMIN_USER = "admin"
# Any logged-in user may read every experiment and model; changing one needs its owner's or the admin's grant.
DEFAULT_PERMISSION = "READ"
# A verified login is kept this long (per server worker, under an HMAC of the password) instead of
# re-hashing the password on every request; a password changed or a user deleted through one worker
# may still be accepted by the other for up to this long.
AUTH_CACHE_SECONDS = 60
AUTHORIZATION_FUNCTION = "profcast.hosting.registry_rules:authenticate_request"


def server_secrets(folder: Path) -> dict:
    """The PostgreSQL password and Flask secret key of the server in folder; generated on the first call."""
    path = folder / SECRETS_FILE
    if not path.exists():
        write_private(
            path,
            ini_text(
                "server",
                {"postgres_password": secrets.token_urlsafe(24), "flask_secret_key": secrets.token_urlsafe(32)},
            ),
        )
    return read_ini(path, "server")


def admin_login(folder: Path) -> tuple[str, str]:
    """The MLflow admin's user name and password for the server in folder; generated on the first call."""
    path = folder / CREDENTIALS_FILE
    if not path.exists():
        write_credentials(path, ADMIN_USER, secrets.token_urlsafe(24))
    return read_credentials(path)


def write_auth_config(folder: Path) -> Path:
    """basic_auth.ini for `mlflow server --app-name basic-auth`; returns its path."""
    path = folder / AUTH_CONFIG_FILE
    write_private(
        path,
        ini_text(
            "mlflow",
            {
                "default_permission": DEFAULT_PERMISSION,
                "database_uri": f"sqlite:///{folder / AUTH_DATABASE}",
                "admin_username": ADMIN_USER,  # the password comes in MLFLOW_AUTH_ADMIN_PASSWORD, not in this file
                "authorization_function": AUTHORIZATION_FUNCTION,  # basic auth + admin-only registry changes
                "auth_cache_ttl_seconds": str(AUTH_CACHE_SECONDS),
                "auth_cache_max_size": "1000",
            },
        ),
    )
    return path
