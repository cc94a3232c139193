"""Run ``mlflow models serve`` on a free loopback port and stop it again (tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ModelServer:
    """``mlflow models serve`` on a loopback port (``--env-manager local`` unless told), for tests and benchmarks.

    A context manager: starts the server in its own process group, waits for /ping, and stops
    that group on exit. The server's output goes to ``log_path``.
    """

    def __init__(
        self,
        model_uri: str,
        log_path,
        env: dict | None = None,
        startup_seconds: float = 120.0,
        env_manager: str = "local",
        cwd=None,
    ):
        self.model_uri, self.log_path, self.env, self.startup_seconds = model_uri, Path(log_path), env, startup_seconds
        self.env_manager, self.cwd = (
            env_manager,
            cwd,
        )  # uv | virtualenv: MLflow builds the model's own environment first
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> "ModelServer":

        command = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            self.model_uri,
            "--env-manager",
            self.env_manager,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"mlflow models serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"mlflow models serve did not answer /ping within {self.startup_seconds:.0f} s; see {self.log_path}"
        )

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server's process group (the CLI and the uvicorn worker it started) and wait for it."""

        if self.process is None:
            return
        for sig, seconds in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            if self._group_gone_within(seconds):
                return

    def _group_gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader, or the group never looks empty
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False
