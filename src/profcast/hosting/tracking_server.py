"""Start, stop and report a shared MLflow tracking server on a PostgreSQL store.

    python -m profcast.hosting.tracking_server start|stop|status      (or: make tracking-server / tracking-server-stop)

A sweep whose jobs run in several processes or on several hosts needs one store they can all
write to at once; a SQLite file is not that. This module keeps, in one data folder
(``$PROFCAST_SERVER_DIR``, default ``<repo>/.cache/profcast/server``):

    postgres/       a PostgreSQL 15 cluster (the runs, params, metrics and registry)
    artifacts/      the artifact store, served by the MLflow server (``--serve-artifacts``)
    postgres.log, server.log, server.json (ports and process id of the running server)

    credentials, secrets.ini, basic_auth.ini, basic_auth.db   (0600; profcast.hosting.credentials)

and serves it at ``http://$PROFCAST_SERVER_HOST:$PROFCAST_SERVER_PORT`` (default 127.0.0.1:5050).
Nothing is open without a password, wherever the server binds: any local account reaches 127.0.0.1
too. PostgreSQL listens on 127.0.0.1 only and asks for a password (scram-sha-256) that only the
MLflow server knows. The MLflow server runs MLflow's basic-auth app; its admin login, generated on
the first start, is in ``credentials`` (how jobs find it: profcast.tracking.credentials).
PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` user, and the data
folder must be one that account can reach.
"""

from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.hosting.credentials import AUTH_DATABASE, admin_login, server_secrets, write_auth_config
from profcast.hosting.model_server import free_loopback_port
from profcast.tracking.credentials import DEFAULT_SERVER_DIR, server_dir, write_private  # noqa: F401 (server_dir: public here too)

log = logging.getLogger(__name__)

DEFAULT_DIR = DEFAULT_SERVER_DIR
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5050
PG_BIN = Path(os.environ.get("PROFCAST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the account PostgreSQL runs as when we are root
DATABASE = "mlflow"
STATE_FILE = "server.json"
START_TIMEOUT_S = 180  # a fresh database runs MLflow's schema migrations first


@dataclass
class ServerState:
    """What `stop` and `status` need to find a running server again."""

    host: str
    port: int
    pg_port: int
    pid: int

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_address() -> tuple[str, int]:
    """Host and port from $PROFCAST_SERVER_HOST / $PROFCAST_SERVER_PORT (default 127.0.0.1:5050)."""
    port = os.environ.get("PROFCAST_SERVER_PORT") or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ProfcastError(f"PROFCAST_SERVER_PORT='{port}' is not a port number; accepted: 1-65535")
    return os.environ.get("PROFCAST_SERVER_HOST") or DEFAULT_HOST, int(port)


def _as_postgres() -> dict:
    """subprocess arguments that run a PostgreSQL binary as `postgres` when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": PG_USER, "group": PG_USER, "extra_groups": [], "env": {**os.environ, "HOME": "/tmp"}}


def _pg(binary: str, *args: str, timeout: float = 120) -> None:
    path = PG_BIN / binary
    if not path.exists():
        raise ProfcastError(f"PostgreSQL binary {path} not found; install PostgreSQL 15 or set PROFCAST_PG_BIN")
    done = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=timeout, **_as_postgres())
    if done.returncode != 0:
        raise ProfcastError(
            f"{binary} {' '.join(args)} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
        )


def unreachable_by_postgres(folder: Path) -> Path | None:
    """The first folder on the way to `folder` that the `postgres` account cannot enter, or None.

    Only matters under root, where PostgreSQL runs as `postgres`: a checkout under a 0700 home or a
    `mktemp -d` folder would make initdb fail with a bare 'Permission denied'.
    """
    account = pwd.getpwnam(PG_USER)
    groups = {account.pw_gid} | {entry.gr_gid for entry in _groups_of(PG_USER)}
    for step in [*reversed(folder.parents), folder]:
        if not step.exists():
            return None  # made by us below, 0755
        info = step.stat()
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return step
    return None


def _groups_of(user: str) -> list:

    return [entry for entry in grp.getgrall() if user in entry.gr_mem]


def check_postgres_can_reach(folder: Path) -> None:
    """Under root: a one-line error naming the folder `postgres` cannot enter, and what to do."""
    if os.geteuid() != 0:
        return
    try:
        blocked = unreachable_by_postgres(folder)
    except KeyError:
        raise ProfcastError(
            f"PostgreSQL refuses to run as root and there is no '{PG_USER}' account to run it as; "
            f"create it (useradd --system {PG_USER}) or start the server as another user"
        ) from None
    if blocked is not None:
        raise ProfcastError(
            f"PostgreSQL runs as the '{PG_USER}' account, which cannot enter {blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):04o}) "
            f"on the way to the data folder {folder}; pick a folder it can reach, e.g. "
            f"PROFCAST_SERVER_DIR=/var/lib/profcast/server, or open that folder to it (chmod o+x {blocked})"
        )


def start_postgres(folder: Path, pg_port: int, password: str) -> None:
    """Create (first time) and start the PostgreSQL cluster in folder/postgres on 127.0.0.1:pg_port.

    Every connection, local socket included, must give the password (scram-sha-256).
    """
    data = folder / "postgres"
    logfile = folder / "postgres.log"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        # initdb reads the superuser's password from a file (0600, removed right after).
        password_file = data.parent / ".pgpass-initdb"
        write_private(password_file, password + "\n")
        if os.geteuid() == 0:  # the cluster's files must belong to the account that runs it
            shutil.chown(data, PG_USER, PG_USER)
            shutil.chown(password_file, PG_USER, PG_USER)
        try:
            _pg(
                "initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        finally:
            password_file.unlink(missing_ok=True)
    logfile.touch()
    if os.geteuid() == 0:
        shutil.chown(logfile, PG_USER, PG_USER)
    # The socket goes in the data folder: /var/run/postgresql may not exist or be writable.
    options = f"-p {pg_port} -c listen_addresses=127.0.0.1 -k {data}"
    _pg("pg_ctl", "-D", str(data), "-l", str(logfile), "-o", options, "-w", "-t", "60", "start")
    if _trusts_local_connections(data):
        _require_password(data, pg_port, password)
    _create_database(pg_port, password)


def _trusts_local_connections(data: Path) -> bool:
    """True for a cluster made by an older profcast with --auth=trust."""
    rules = (data / "pg_hba.conf").read_text(errors="replace")
    return any(
        line.split()[-1:] == ["trust"]
        for line in rules.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def _require_password(data: Path, pg_port: int, password: str) -> None:
    """Give an older trust-authenticated cluster the password and switch it to scram-sha-256, then reload it."""
    import psycopg2  # noqa: PLC0415  PostgreSQL's driver (scale extra), only for the tracking server

    log.info("PostgreSQL cluster %s trusted local connections; setting a password and requiring it", data)
    connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET password_encryption = 'scram-sha-256'")
        cursor.execute("ALTER USER postgres PASSWORD %s", (password,))
    connection.close()
    rules = (data / "pg_hba.conf").read_text(errors="replace").splitlines()
    switched = [
        line.rsplit("trust", 1)[0] + "scram-sha-256"
        if line.split()[-1:] == ["trust"] and not line.lstrip().startswith("#")
        else line
        for line in rules
    ]
    (data / "pg_hba.conf").write_text("\n".join(switched) + "\n")
    _pg("pg_ctl", "-D", str(data), "reload")


def stop_postgres(folder: Path) -> None:
    """Stop the cluster in folder/postgres if it runs (fast shutdown: open sessions are cut)."""
    data = folder / "postgres"
    if (data / "postmaster.pid").exists():
        _pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")


def _create_database(pg_port: int, password: str) -> None:
    try:
        import psycopg2  # noqa: PLC0415  PostgreSQL's driver (scale extra), only for the tracking server; missing, it is told in one line
    except ImportError as error:
        raise ProfcastError('psycopg2 is missing; install the scale extra: pip install -e ".[scale]"') from error
    connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", password=password, dbname="postgres")
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    connection.close()


def backend_store_uri(pg_port: int) -> str:
    """The SQLAlchemy URI of the MLflow database in the local cluster (the password goes in PGPASSWORD, not here:
    a command line is visible to every local account)."""
    return f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/{DATABASE}"


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def read_state(folder: Path) -> ServerState | None:
    """The running server recorded in folder/server.json, or None."""
    path = folder / STATE_FILE
    return ServerState(**json.loads(path.read_text())) if path.exists() else None


def status(folder: Path) -> ServerState | None:
    """The server if it answers its health check, else None."""
    state = read_state(folder)
    return state if state is not None and _healthy(state.uri) else None


def start(folder: Path, host: str, port: int, workers: int = 2) -> ServerState:
    """Start PostgreSQL and `mlflow server` on it; return once the server answers /health."""
    running = status(folder)
    if running is not None:
        log.info("tracking server already running at %s", running.uri)
        return running
    if _port_taken(host, port):
        raise ProfcastError(f"port {port} on {host} is in use; choose another with PROFCAST_SERVER_PORT")
    check_postgres_can_reach(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "artifacts").mkdir(exist_ok=True)
    if not (folder / AUTH_DATABASE).exists():
        write_private(
            folder / AUTH_DATABASE, ""
        )  # SQLite takes an empty file as a new database; it holds password hashes
    secrets = server_secrets(folder)
    _, admin_password = admin_login(folder)
    stop_postgres(folder)  # a cluster left over from an unclean stop
    pg_port = free_loopback_port()
    start_postgres(folder, pg_port, secrets["postgres_password"])
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        backend_store_uri(pg_port),
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    environment = {
        **os.environ,
        "PGPASSWORD": secrets["postgres_password"],
        "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(folder)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,  # read only when the user store is new
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets["flask_secret_key"],
    }
    with open(folder / "server.log", "ab") as server_log:
        # Its own session, so `stop` ends the server and its workers together.
        server = subprocess.Popen(
            command, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
        )
    state = ServerState(host=host, port=port, pg_port=pg_port, pid=server.pid)
    (folder / STATE_FILE).write_text(json.dumps(asdict(state)))
    deadline = time.monotonic() + START_TIMEOUT_S
    probe = ServerState("127.0.0.1" if host == "0.0.0.0" else host, port, pg_port, server.pid)
    while not _healthy(probe.uri):
        if server.poll() is not None or time.monotonic() > deadline:
            stop(folder)
            raise ProfcastError(f"mlflow server did not start on {host}:{port}; see {folder / 'server.log'}")
        time.sleep(0.5)
    log.info(
        "tracking server at %s (PostgreSQL on 127.0.0.1:%d, artifacts in %s; login in %s)",
        state.uri,
        pg_port,
        folder / "artifacts",
        folder / "credentials",
    )
    return state


def stop(folder: Path) -> bool:
    """Stop the server and PostgreSQL; True if something was running."""
    state = read_state(folder)
    if state is not None:
        try:
            os.killpg(state.pid, signal.SIGTERM)
            for _ in range(100):
                os.killpg(state.pid, 0)
                time.sleep(0.1)
            os.killpg(state.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        (folder / STATE_FILE).unlink()
    was_running = (folder / "postgres" / "postmaster.pid").exists()
    stop_postgres(folder)
    return state is not None or was_running


def main(argv=None) -> int:
    """Command line: start | stop | status; errors are one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(description="The shared MLflow tracking server (PostgreSQL store).")
    parser.add_argument("action", choices=("start", "stop", "status"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = server_dir()
    try:
        if args.action == "start":
            state = start(folder, *server_address())
            print(f"tracking server running: tracking_uri={state.uri}  (data in {folder})")
        elif args.action == "stop":
            print("tracking server stopped" if stop(folder) else "tracking server was not running")
        else:
            state = status(folder)
            print(f"running: tracking_uri={state.uri}" if state else f"not running (data folder {folder})")
            return 0 if state else 1
    except ProfcastError as error:
        print(f"profcast: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
