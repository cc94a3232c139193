"""The tracking server's PostgreSQL 15 cluster: create, start, stop, and clean up after a crash.

The cluster lives in ``<server folder>/postgres`` and listens on 127.0.0.1 only, asking every
connection for a password (scram-sha-256). PostgreSQL refuses to run as root, so under root it runs
as the ``postgres`` account.

A postmaster killed with SIGKILL (the OOM killer, a power cut) leaves ``postmaster.pid`` behind:
``pg_ctl stop`` then fails with "could not send stop signal", and backends busy at that moment may
linger and hold the old shared memory. ``stop_postgres`` and ``start_postgres`` recognise a pid file
whose postmaster is gone, end its leftover backends and remove the file, so PostgreSQL's own crash
recovery can run at the next start.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.tracking.credentials import write_private

log = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("PROFCAST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the account PostgreSQL runs as when we are root
DATABASE = "mlflow"
PID_FILE = "postmaster.pid"


def _as_postgres() -> dict:
    """subprocess arguments that run a PostgreSQL binary as `postgres` when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": PG_USER, "group": PG_USER, "extra_groups": [], "env": {**os.environ, "HOME": "/tmp"}}


def run_pg(binary: str, *args: str, timeout: float = 120) -> None:
    """Run one PostgreSQL binary (as `postgres` under root); its last error line as a ProfcastError."""
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
    groups = {account.pw_gid} | {entry.gr_gid for entry in grp.getgrall() if PG_USER in entry.gr_mem}
    for step in [*reversed(folder.parents), folder]:
        if not step.exists():
            return None  # made by us below, open to it
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


def check_postgres_can_reach(folder: Path) -> None:
    """Under root: a one-line error naming the folder `postgres` cannot enter, and what to do."""
    if os.geteuid() != 0:
        return
    try:
        blocked = unreachable_by_postgres(folder.parent)
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


def make_private_folder(folder: Path) -> None:
    """Create the server folder private to this account; under root, enterable (not listable) by `postgres`.

    0700, or under root 0710 with the `postgres` group: PostgreSQL's own folder is inside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, group=PG_USER)
        folder.chmod(0o710)
    else:
        folder.chmod(0o700)


def postmaster_pid(data: Path) -> int | None:
    """The process id recorded in data/postmaster.pid, or None (no file, or not a number)."""
    try:
        first = (data / PID_FILE).read_text(errors="replace").splitlines()[:1]
    except OSError:
        return None
    return int(first[0]) if first and first[0].strip().isdigit() else None


def _serves(pid: int, data: Path) -> bool:
    """True if pid is a live PostgreSQL process of the cluster in data (not a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "postgres" in command and str(data) in command


def postgres_running(folder: Path) -> bool:
    """True if the postmaster of the cluster in folder/postgres is alive."""
    data = folder / "postgres"
    pid = postmaster_pid(data)
    return pid is not None and _serves(pid, data)


def _leftover_backends(data: Path) -> list[int]:
    """Processes still working in the data folder (backends a killed postmaster left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if Path(os.readlink(entry / "cwd")) == data.resolve():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def clear_crashed_postmaster(folder: Path) -> bool:
    """After a postmaster died without cleaning up: end its backends, remove the stale pid file; True if it did."""
    data = folder / "postgres"
    pid = postmaster_pid(data)
    if not (data / PID_FILE).exists() or (pid is not None and _serves(pid, data)):
        return False
    # The backends serve no one once their postmaster is gone, but they still hold its shared
    # memory, and PostgreSQL refuses to start while any process is attached to it.
    for backend in _leftover_backends(data):
        try:
            os.kill(backend, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while _leftover_backends(data) and time.monotonic() < deadline:
        time.sleep(0.2)
    (data / PID_FILE).unlink(missing_ok=True)
    log.info("PostgreSQL in %s had crashed (postmaster %s gone); removed its stale pid file", data, pid)
    return True


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
            run_pg(
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
    clear_crashed_postmaster(folder)
    if not logfile.exists():
        write_private(logfile, "")
    logfile.chmod(0o600)  # PostgreSQL's log may quote statements and their values
    if os.geteuid() == 0:
        shutil.chown(logfile, PG_USER, PG_USER)
    # The socket goes in the data folder: /var/run/postgresql may not exist or be writable.
    options = f"-p {pg_port} -c listen_addresses=127.0.0.1 -k {data}"
    run_pg("pg_ctl", "-D", str(data), "-l", str(logfile), "-o", options, "-w", "-t", "60", "start")
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
    run_pg("pg_ctl", "-D", str(data), "reload")


def stop_postgres(folder: Path) -> bool:
    """Stop the cluster in folder/postgres (fast: open sessions are cut), or clean up after its crash; True if
    there was anything to stop."""
    data = folder / "postgres"
    if clear_crashed_postmaster(folder):
        return True
    if not (data / PID_FILE).exists():
        return False
    try:
        run_pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
    except ProfcastError:
        # A postmaster that will not shut down (a hung session): stop it the hard way; the
        # next start runs crash recovery as after any crash.
        log.warning("PostgreSQL in %s did not stop in time; stopping it immediately", data)
        run_pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    return True


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
