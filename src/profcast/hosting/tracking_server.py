"""Start, stop and report a shared MLflow tracking server on a PostgreSQL store.

    python -m profcast.hosting.tracking_server start|stop|status      (or: make tracking-server / tracking-server-stop)

A sweep whose jobs run in several processes or on several hosts needs one store they can all
write to at once; a SQLite file is not that. This module keeps, in one data folder
(``$PROFCAST_SERVER_DIR``, default ``<repo>/.cache/profcast/server``; 0700, or 0710 for the
`postgres` group under root):

    postgres/       a PostgreSQL 15 cluster (the runs, params, metrics and registry; profcast.hosting.postgres_cluster)
    artifacts/      the artifact store, served by the MLflow server (``--serve-artifacts``); 0700 folders, 0600 files
    postgres.log, server.log, server.json (ports and process id of the running server)

    credentials, secrets.ini, basic_auth.ini, basic_auth.db   (0600; profcast.hosting.credentials)

and serves it at ``http://$PROFCAST_SERVER_HOST:$PROFCAST_SERVER_PORT`` (default 127.0.0.1:5050).
Nothing is open without a password, wherever the server binds: any local account reaches 127.0.0.1
too. The MLflow server runs MLflow's basic-auth app with profcast's registry rules
(profcast.hosting.registry_rules); its admin login, generated on the first start, is in
``credentials`` (how jobs find it: profcast.tracking.credentials).

`start` comes back after any crash: a server that answers is kept (and its PostgreSQL restarted on
the same port if that alone died); otherwise whatever a crash left (a dead server's workers, a
stale ``postmaster.pid``, an unreadable ``server.json``) is cleared first, then both start afresh.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.hosting.credentials import AUTH_DATABASE, admin_login, server_secrets, write_auth_config
from profcast.hosting.model_server import free_loopback_port
from profcast.hosting.postgres_cluster import (  # noqa: F401 (PG_BIN, PG_USER, stop_postgres: public here too)
    PG_BIN,
    PG_USER,
    backend_store_uri,
    check_postgres_can_reach,
    make_private_folder,
    postgres_running,
    start_postgres,
    stop_postgres,
)
from profcast.tracking.credentials import DEFAULT_SERVER_DIR, server_dir, write_private  # noqa: F401 (server_dir: public here too)

log = logging.getLogger(__name__)

DEFAULT_DIR = DEFAULT_SERVER_DIR
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5050
STATE_FILE = "server.json"
START_TIMEOUT_S = 600  # a fresh database runs MLflow's schema migrations first: minutes on a loaded 2-core machine
STOP_GRACE_S = 10
# Set in the MLflow server's environment only; its workers inherit it, so a crashed server's
# leftovers are found by it even when server.json is lost.
SERVER_MARKER = "PROFCAST_TRACKING_SERVER_OF"


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

    @property
    def probe_uri(self) -> str:
        """Where this host reaches it (a server bound to 0.0.0.0 answers on 127.0.0.1)."""
        return f"http://{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:{self.port}"


def server_address() -> tuple[str, int]:
    """Host and port from $PROFCAST_SERVER_HOST / $PROFCAST_SERVER_PORT (default 127.0.0.1:5050)."""
    port = os.environ.get("PROFCAST_SERVER_PORT") or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ProfcastError(f"PROFCAST_SERVER_PORT='{port}' is not a port number; accepted: 1-65535")
    return os.environ.get("PROFCAST_SERVER_HOST") or DEFAULT_HOST, int(port)


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


def write_state(folder: Path, state: ServerState) -> None:
    """Record the running server in folder/server.json, whole or not at all (temp file, then rename)."""
    partial = folder / f".{STATE_FILE}.partial"
    write_private(partial, json.dumps(asdict(state)))
    os.replace(partial, folder / STATE_FILE)


def read_state(folder: Path) -> ServerState | None:
    """The server recorded in folder/server.json; None when there is none or it is unreadable."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        return ServerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        log.warning("%s is unreadable (%s); treating the server as crashed", path, error)
        return None


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def mlflow_server_alive(state: ServerState) -> bool:
    """True if the recorded MLflow server process lives (a reused pid runs something else) and answers."""
    return "mlflow" in _command_line(state.pid) and _healthy(state.probe_uri)


def leftover_server_processes(folder: Path) -> list[int]:
    """Processes of an MLflow server started for folder (found by its environment, not server.json)."""
    marker = f"{SERVER_MARKER}={folder}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def status(folder: Path) -> ServerState | None:
    """The server if it answers its health check and its PostgreSQL runs, else None."""
    state = read_state(folder)
    return state if state is not None and mlflow_server_alive(state) and postgres_running(folder) else None


def status_line(folder: Path) -> str:
    """`running: ...` or `not running (...)`, naming what is down."""
    state = read_state(folder)
    if state is None:
        return f"not running (data folder {folder})"
    down = [] if mlflow_server_alive(state) else [f"MLflow server (pid {state.pid}) gone or not answering"]
    down += [] if postgres_running(folder) else ["PostgreSQL not running"]
    if not down:
        return f"running: tracking_uri={state.uri}"
    return f"not running ({'; '.join(down)}; `make tracking-server` starts it again; data folder {folder})"


def start(folder: Path, host: str, port: int, workers: int = 2) -> ServerState:
    """Start PostgreSQL and `mlflow server` on it, after clearing what a crash left; return once /health answers."""
    running = read_state(folder)
    if running is not None and mlflow_server_alive(running):
        if not postgres_running(folder):
            # Same port: the server's connection pool reconnects to it (pre-ping), no restart needed.
            log.info("PostgreSQL had stopped; starting it again on 127.0.0.1:%d", running.pg_port)
            start_postgres(folder, running.pg_port, server_secrets(folder)["postgres_password"])
        log.info("tracking server already running at %s", running.uri)
        return running
    check_postgres_can_reach(folder)
    stop(folder)  # a crash's leftovers: a dead server's workers, a stale postmaster.pid, a bad server.json
    if _port_taken(host, port):
        raise ProfcastError(f"port {port} on {host} is in use; choose another with PROFCAST_SERVER_PORT")
    make_private_folder(folder)
    make_private_tree(folder / "artifacts")
    if not (folder / AUTH_DATABASE).exists():
        # SQLite takes an empty file as a new database; it holds password hashes.
        write_private(folder / AUTH_DATABASE, "")
    secrets = server_secrets(folder)
    _, admin_password = admin_login(folder)
    pg_port = free_loopback_port()
    start_postgres(folder, pg_port, secrets["postgres_password"])
    server = _spawn_mlflow_server(folder, host, port, pg_port, workers, secrets, admin_password)
    state = ServerState(host=host, port=port, pg_port=pg_port, pid=server.pid)
    write_state(folder, state)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(state.probe_uri):
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


def _spawn_mlflow_server(folder, host, port, pg_port, workers, secrets, admin_password) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"),
        *("--backend-store-uri", backend_store_uri(pg_port)),
        *("--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")),
        *("--host", host, "--port", str(port), "--workers", str(workers)),
    ]
    environment = {
        **os.environ,
        SERVER_MARKER: str(folder),
        "PGPASSWORD": secrets["postgres_password"],
        "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(folder)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,  # read only when the user store is new
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets["flask_secret_key"],
        # MLflow's GenAI job runner (7 worker processes) serves nothing profcast uses.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"),
    }
    log_descriptor = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(log_descriptor, 0o600)  # a log an older start left readable by others
    # umask 077, inherited by the server: every artifact it writes is the server account's alone.
    umask = os.umask(0o077)
    try:
        with os.fdopen(log_descriptor, "ab") as server_log:
            # Its own session, so `stop` ends the server and its workers together.
            return subprocess.Popen(
                command, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
            )
    finally:
        os.umask(umask)


def make_private_tree(folder: Path) -> None:
    """Create folder 0700, and make what an older start left readable by others private (0700/0600)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    for parent, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(parent, name), 0o700)
        for name in files:
            os.chmod(os.path.join(parent, name), 0o600)


def _end_process_groups(groups: set[int]) -> None:
    """SIGTERM each process group, SIGKILL what is left after the grace period."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + STOP_GRACE_S
    for group in groups:
        try:
            while time.monotonic() < deadline:
                os.killpg(group, 0)
                time.sleep(0.1)
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue


def stop(folder: Path) -> bool:
    """Stop the server and PostgreSQL, or clear what a crash of either left; True if something was running."""
    state = read_state(folder)
    # The recorded pid only while it is still an MLflow process: a reused pid is someone else's.
    groups = {state.pid} if state is not None and "mlflow" in _command_line(state.pid) else set()
    for pid in leftover_server_processes(folder):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    _end_process_groups(groups)
    for pid in leftover_server_processes(folder):  # one that left its group: the marker still names it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (folder / STATE_FILE).unlink(missing_ok=True)
    postgres_was_running = stop_postgres(folder)
    return state is not None or bool(groups) or postgres_was_running


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
            line = status_line(folder)
            print(line)
            return 0 if line.startswith("running") else 1
    except ProfcastError as error:
        print(f"profcast: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
