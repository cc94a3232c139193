"""Helpers for the scale-out tests: a throwaway PostgreSQL-backed MLflow server and a local Ray cluster.

Both run for real on 127.0.0.1 on free ports, in folders under /tmp that are removed afterwards; the
fixtures that start them (``postgres_tracking_server``, once per run, and ``ray_temp_dir``) live in
tests/conftest.py. Tests using them skip when the `scale` extra (ray, psycopg2, the Hydra launchers) or
the PostgreSQL binaries are missing.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from profcast.hosting import tracking_server
from profcast.tracking.credentials import read_credentials
from tests.conftest import REPO

SCALE_MODULES = (
    "ray",
    "psycopg2",
    "hydra_plugins.hydra_joblib_launcher",
    "hydra_plugins.hydra_ray_launcher",
    "flask_wtf",
)
RAY_CPUS = 2


def missing_scale_requirement() -> str | None:
    """Why the scale tests cannot run here, or None."""
    for module in SCALE_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install -e '.[scale]')"
        except ModuleNotFoundError:
            return f"{module} is not installed (pip install -e '.[scale]')"
    if not (tracking_server.PG_BIN / "initdb").exists():
        return f"PostgreSQL binaries not found in {tracking_server.PG_BIN}"
    return None


def require_scale() -> None:
    reason = missing_scale_requirement()
    if reason:
        pytest.skip(reason)


def worker_environment(**extra: str) -> dict:
    """The environment for a sweep: one BLAS/OpenMP thread per job, so 2 jobs share 2 cores fairly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}
    env.pop("PROFCAST_PARENT_RUN_ID", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def server_folder() -> Path:
    """A folder for a throwaway server. Not under pytest's tmp folder: that is private to us, and PostgreSQL may
    run as another user."""
    folder = Path(tempfile.mkdtemp(prefix="profcast-pg-"))
    folder.chmod(0o755)
    return folder


@contextmanager
def logged_in_as_admin(folder: Path):
    """This process and the sweeps it starts log in as the server's admin (its credentials file), then not."""
    saved = {name: os.environ.get(name) for name in LOGIN_VARIABLES}
    os.environ["PROFCAST_CREDENTIALS_FILE"] = str(folder / "credentials")
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = read_credentials(
        folder / "credentials"
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


LOGIN_VARIABLES = ("PROFCAST_CREDENTIALS_FILE", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def ray_overrides(ray_temp_dir: Path) -> list[str]:
    """Launcher overrides: a local Ray cluster started by the sweep's own ray.init, 2 CPUs, on 127.0.0.1."""
    return [
        "hydra/launcher=ray",
        f"+hydra.launcher.ray.init.num_cpus={RAY_CPUS}",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
        f"+hydra.launcher.ray.init._temp_dir={ray_temp_dir}",
    ]


def start_sweep(overrides: list[str], **env: str) -> subprocess.Popen:
    """`python -m profcast.train -m ...` in its own session, so its Ray cluster's processes are findable and stoppable."""
    return subprocess.Popen(
        [sys.executable, "-m", "profcast.train", "-m", *overrides],
        cwd=REPO,
        env=worker_environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish_sweep(sweep: subprocess.Popen, timeout_s: float = 600) -> str:
    """Wait for a sweep; return its output. Whatever is left in its session (Ray's daemons) is stopped."""
    try:
        output, _ = sweep.communicate(timeout=timeout_s)
    finally:
        for pid in session_processes(sweep.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return output


def session_processes(session: int) -> list[int]:
    """Ids of the live processes in one session."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def ray_job_workers(session: int) -> list[int]:
    """Ids of the Ray workers started by the sweep in `session` that are running a job right now."""
    pids = []
    for pid in session_processes(session):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if command.startswith("ray::_run_job"):
            pids.append(pid)
    return pids
