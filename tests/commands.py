"""Run a profcast command as a user runs it, in a process of its own: the one way tests start a command.

Tests reach these through the ``run_cli`` and ``start_cli`` fixtures (tests/conftest.py), which put them
in the integration tier; a test in the default tier that starts Python in a process of its own fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def command_environment(env_uri=None, extra_env=None) -> dict:
    """The environment a command runs in: this checkout's code first, no parent sweep run, the given store."""
    env = {**os.environ, **(extra_env or {})}
    # This checkout's src/, wherever the command runs from (the venv's editable install may point elsewhere).
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), str(REPO), (extra_env or {}).get("PYTHONPATH")])
    )
    env.pop("PROFCAST_PARENT_RUN_ID", None)
    if env_uri:
        env["MLFLOW_TRACKING_URI"] = env_uri
    return env


def run_command(
    args, env_uri=None, timeout=90, extra_env=None, cwd=REPO, program=PYTHON, env=None
) -> subprocess.CompletedProcess:
    """``program ARGS`` (Python by default) in its own process, the repo as working directory; its output captured.

    ``env`` replaces the whole environment (for a command that must not see ours); otherwise ours with
    ``extra_env``, this checkout on ``PYTHONPATH`` and ``env_uri`` as the MLflow store.
    """
    env = env if env is not None else command_environment(env_uri, extra_env)
    return subprocess.run([str(program), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def start_command(args, env_uri, log_path: Path, extra_env=None) -> subprocess.Popen:
    """Start a command in its own process group (so a signal reaches it as Ctrl-C would), output to ``log_path``."""
    env = command_environment(env_uri, extra_env)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [PYTHON, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
