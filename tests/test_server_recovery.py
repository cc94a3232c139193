"""What a crash leaves of the tracking server, recognised and cleared without a real PostgreSQL or MLflow.

Stand-ins: a data folder with a stale ``postmaster.pid``, a half-written ``server.json``, and plain
sleeping processes in the places of a dead postmaster's backends and a dead server's workers. The
real crashes are in tests/test_server_crash.py; the registry rules and check are here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from profcast.errors import ProfcastError
from profcast.hosting import postgres_cluster, tracking_server
from profcast.hosting.registry_rules import admin_only_routes
from profcast.serve.registry_check import check_model_matches_its_name

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def a_pid_nobody_has() -> int:
    """A process id the kernel never hands out (pid_max itself)."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def crashed_cluster(folder: Path, pid: int) -> Path:
    data = folder / "postgres"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text(f"{pid}\n{data}\n1796580750\n5432\n")
    return data


def gone_within(process: subprocess.Popen, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True
        time.sleep(0.1)
    return False


def test_a_pid_file_whose_postmaster_is_gone_is_a_crash_and_is_cleared(tmp_path):
    data = crashed_cluster(tmp_path, a_pid_nobody_has())
    assert not postgres_cluster.postgres_running(tmp_path)
    assert postgres_cluster.stop_postgres(tmp_path) is True  # where `pg_ctl stop` fails: "could not send stop signal"
    assert not (data / "postmaster.pid").exists()
    assert postgres_cluster.stop_postgres(tmp_path) is False  # nothing left to stop


def test_a_live_pid_of_another_program_is_not_taken_for_the_postmaster(tmp_path):
    data = crashed_cluster(tmp_path, os.getpid())  # a reused pid: alive, but not PostgreSQL of this folder
    assert not postgres_cluster.postgres_running(tmp_path)
    assert postgres_cluster.clear_crashed_postmaster(tmp_path) and not (data / "postmaster.pid").exists()


@pytest.mark.integration
def test_backends_a_killed_postmaster_left_working_in_its_folder_are_ended(tmp_path):
    data = crashed_cluster(tmp_path, a_pid_nobody_has())
    backend = subprocess.Popen(SLEEPER, cwd=data)  # PostgreSQL's backends work in the data folder
    bystander = subprocess.Popen(SLEEPER, cwd=tmp_path)
    try:
        assert backend.pid in postgres_cluster._leftover_backends(data)
        assert postgres_cluster.clear_crashed_postmaster(tmp_path)
        assert gone_within(backend) and bystander.poll() is None
    finally:
        for process in (backend, bystander):
            process.kill()
            process.wait()


def test_a_half_written_state_file_reads_as_no_server(tmp_path):
    state = tracking_server.ServerState("127.0.0.1", 5050, 5432, a_pid_nobody_has())
    tracking_server.write_state(tmp_path, state)
    assert tracking_server.read_state(tmp_path) == state
    assert [path.name for path in tmp_path.iterdir()] == ["server.json"]  # no temp file left
    assert (tmp_path / "server.json").stat().st_mode & 0o077 == 0
    (tmp_path / "server.json").write_text(json.dumps(state.__dict__)[:25])  # cut short by a crash
    assert tracking_server.read_state(tmp_path) is None
    assert tracking_server.status(tmp_path) is None
    assert tracking_server.status_line(tmp_path).startswith("not running")


def test_status_names_the_dead_server_and_the_dead_database(tmp_path):
    tracking_server.write_state(tmp_path, tracking_server.ServerState("127.0.0.1", 1, 5432, a_pid_nobody_has()))
    crashed_cluster(tmp_path, a_pid_nobody_has())
    line = tracking_server.status_line(tmp_path)
    assert line.startswith("not running (") and "MLflow server (pid" in line and "PostgreSQL not running" in line
    assert tracking_server.main(["status"]) in (0, 1)  # the command itself never raises


@pytest.mark.integration
def test_stop_ends_a_dead_servers_workers_found_by_their_environment(tmp_path):
    marker = {tracking_server.SERVER_MARKER: str(tmp_path)}
    worker = subprocess.Popen(SLEEPER, env={**os.environ, **marker}, start_new_session=True)
    other = subprocess.Popen(SLEEPER, env={**os.environ, tracking_server.SERVER_MARKER: str(tmp_path / "other")})
    try:
        (tmp_path / "server.json").write_text("{")  # and no usable record of it
        assert tracking_server.leftover_server_processes(tmp_path) == [worker.pid]
        assert tracking_server.stop(tmp_path) is True
        assert gone_within(worker) and other.poll() is None
        assert not (tmp_path / "server.json").exists()
    finally:
        for process in (worker, other):
            process.kill()
            process.wait()


def test_the_admin_only_routes_are_registry_creation_and_alias_moves():
    routes = admin_only_routes()
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        assert (f"{prefix}/registered-models/create", "POST") in routes
        assert (f"{prefix}/registered-models/alias", "POST") in routes
        assert (f"{prefix}/registered-models/alias", "DELETE") in routes
        assert (f"{prefix}/registered-models/get", "GET") not in routes
        assert (f"{prefix}/model-versions/create", "POST") not in routes  # MLflow's EDIT grant rules it
    assert len(routes) == 6


def model_folder(folder: Path, manifest_anchor: str, metadata: dict) -> Path:
    """The parts of a logged job model the check reads: MLmodel (metadata) and the data manifest."""
    import yaml

    (folder / "data" / "model").mkdir(parents=True)
    spec = {"flavors": {"python_function": {"data": "data/model"}}, "metadata": metadata}
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    (folder / "data" / "model" / "manifest.json").write_text(json.dumps({"anchor": manifest_anchor}))
    return folder


def version(name: str, fingerprint: str | None = None):
    return SimpleNamespace(
        name=name, version="3", run_id=None, tags={"profcast.data_fingerprint": fingerprint} if fingerprint else {}
    )


def test_a_model_is_served_under_its_own_anchor_and_data_only(tmp_path):
    good = model_folder(tmp_path / "good", "g3s.xlarge", {"anchor": "g3s.xlarge", "data_fingerprint": "abc"})
    check_model_matches_its_name("models:/profcast-g3s.xlarge/3", good, version("profcast-g3s.xlarge", "abc"))

    with pytest.raises(ProfcastError) as refused:
        check_model_matches_its_name("models:/profcast-p3.2xlarge/3", good, version("profcast-p3.2xlarge", "abc"))
    assert "anchor 'g3s.xlarge', not 'p3.2xlarge'" in str(refused.value) and "\n" not in str(refused.value)

    relabelled = model_folder(
        tmp_path / "relabelled", "g3s.xlarge", {"anchor": "p3.2xlarge", "data_fingerprint": "abc"}
    )
    with pytest.raises(ProfcastError, match="anchor 'g3s.xlarge', not 'p3.2xlarge'"):  # the manifest is what it serves
        check_model_matches_its_name("models:/profcast-p3.2xlarge/3", relabelled, version("profcast-p3.2xlarge"))

    with pytest.raises(ProfcastError, match="fingerprint abc, but the version records def"):
        check_model_matches_its_name("models:/profcast-g3s.xlarge/3", good, version("profcast-g3s.xlarge", "def"))

    with pytest.raises(ProfcastError, match="not a profcast registered model"):
        check_model_matches_its_name("models:/other/3", good, version("other", "abc"))
