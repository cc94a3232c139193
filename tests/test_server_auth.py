"""The shared tracking server is closed by default: PostgreSQL asks a password, MLflow asks a login, only the
admin creates registered models or moves @champion, and its files are private to it.

Real servers on 127.0.0.1 (skipped without the `scale` extra or the PostgreSQL binaries).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from profcast.hosting import tracking_server
from profcast.tracking.credentials import read_credentials, write_credentials
from tests.conftest import REPO
from tests.fixtures_scale import (
    worker_environment,
)

pytestmark = pytest.mark.integration


def test_secrets_are_written_private(postgres_tracking_server_folder):
    for name in ("credentials", "secrets.ini", "basic_auth.ini", "basic_auth.db"):
        mode = stat.S_IMODE((postgres_tracking_server_folder / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {mode:o}"
    username, password = read_credentials(postgres_tracking_server_folder / "credentials")
    assert username == "admin" and len(password) >= 24
    assert not (postgres_tracking_server_folder / ".pgpass-initdb").exists()


def test_an_unauthenticated_request_is_refused(postgres_tracking_server):
    url = f"{postgres_tracking_server}/api/2.0/mlflow/experiments/search"
    assert requests.get(url, params={"max_results": 1}, timeout=30).status_code == 401
    assert (
        requests.get(url, params={"max_results": 1}, auth=("admin", "not-the-password"), timeout=30).status_code == 401
    )
    assert (
        requests.get(
            url,
            params={"max_results": 1},
            auth=(os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]),
            timeout=30,
        ).status_code
        == 200
    )
    assert requests.get(f"{postgres_tracking_server}/health", timeout=30).status_code == 200  # probes need no login


def test_postgres_refuses_a_connection_without_the_password(postgres_tracking_server_folder):
    import psycopg2

    pg_port = tracking_server.read_state(postgres_tracking_server_folder).pg_port
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", dbname="mlflow", connect_timeout=10)


def test_a_read_only_user_can_read_but_not_register_or_delete(postgres_tracking_server):
    admin = MlflowClient(postgres_tracking_server)
    name = f"auth-{uuid.uuid4().hex[:6]}"
    experiment_id = admin.create_experiment(name)
    run = admin.create_run(experiment_id)
    admin.set_terminated(run.info.run_id, "FINISHED")
    admin.create_registered_model(f"profcast-{name}")
    version = admin.create_model_version(f"profcast-{name}", f"runs:/{run.info.run_id}/profcast", run.info.run_id)

    # The auth app's own REST API: a user, then READ on the experiment and on the registered model.
    login = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    reader, reader_password = f"reader-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    api = f"{postgres_tracking_server}/api"
    assert (
        requests.post(
            f"{api}/2.0/mlflow/users/create",
            json={"username": reader, "password": reader_password},
            auth=login,
            timeout=30,
        ).status_code
        == 200
    )
    for resource_type, resource_id in (("experiment", experiment_id), ("registered_model", f"profcast-{name}")):
        granted = requests.post(
            f"{api}/3.0/mlflow/users/permissions/grant",
            auth=login,
            timeout=30,
            json={"username": reader, "resource_type": resource_type, "resource_id": resource_id, "permission": "READ"},
        )
        assert granted.status_code == 200, granted.text

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = reader, reader_password
    try:
        client = MlflowClient(postgres_tracking_server)
        assert client.get_run(run.info.run_id).info.status == "FINISHED"  # reading is allowed
        attempts = {
            "register": lambda: client.create_model_version(
                f"profcast-{name}", f"runs:/{run.info.run_id}/profcast", run.info.run_id
            ),
            "champion": lambda: client.set_registered_model_alias(f"profcast-{name}", "champion", version.version),
            "delete run": lambda: client.delete_run(run.info.run_id),
            "delete model": lambda: client.delete_registered_model(f"profcast-{name}"),
        }
        for action, attempt in attempts.items():
            with pytest.raises(MlflowException, match="403") as refused:
                attempt()
            assert "Permission denied" in str(refused.value) or "403" in str(refused.value), action
    finally:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = login
    assert admin.get_run(run.info.run_id).info.lifecycle_stage == "active"
    assert [v.version for v in admin.search_model_versions(f"name = 'profcast-{name}'")] == [version.version]
    assert admin.get_registered_model(f"profcast-{name}").aliases == {}


def test_a_job_without_a_login_fails_in_one_line_and_with_the_file_it_logs(
    postgres_tracking_server, postgres_tracking_server_folder, profile_csv, tmp_path
):
    command = [
        sys.executable,
        "-m",
        "profcast.train",
        "data=file",
        f"data.path={profile_csv}",
        "anchor=slow.gpu",
        "regressor=ratio",
        "target=fast.gpu",  # the smallest job: the login is the point
        "whatif=none",
        "log_plots=false",
        "log_model=false",
        f"tracking_uri={postgres_tracking_server}",
        f"mlflow_experiment=auth-{uuid.uuid4().hex[:6]}",
    ]
    nobody = {
        name: "" for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PROFCAST_CREDENTIALS_FILE")
    }
    refused = subprocess.run(
        command,
        cwd=REPO,
        env={**worker_environment(), **nobody, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith(f"profcast: error: tracking server {postgres_tracking_server} refused the login (HTTP 401)")
    )

    copy = tmp_path / "my-credentials"  # what a worker on another host gets: a copy of the file
    write_credentials(copy, *read_credentials(postgres_tracking_server_folder / "credentials"))
    done = subprocess.run(
        command,
        cwd=REPO,
        env={**worker_environment(), **nobody, "HOME": str(tmp_path), "PROFCAST_CREDENTIALS_FILE": str(copy)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"tracking server login: from {copy}" in done.stdout + done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres account")
def test_as_root_a_folder_postgres_cannot_reach_is_named():
    import pwd
    import shutil
    import tempfile
    from pathlib import Path

    try:
        pwd.getpwnam(tracking_server.PG_USER)
    except KeyError:
        pytest.skip("no postgres account")
    private = Path(tempfile.mkdtemp(prefix="profcast-0700-"))  # mktemp -d: mode 0700, like a private home
    try:
        with pytest.raises(tracking_server.ProfcastError) as refused:
            tracking_server.start(private / "checkout" / "server", "127.0.0.1", 1)  # fails before anything binds
        message = str(refused.value)
        assert f"cannot enter {private} (mode 0700)" in message and "PROFCAST_SERVER_DIR=" in message
        assert not (private / "checkout").exists()  # nothing half-made
    finally:
        shutil.rmtree(private)


def new_user(server: str, admin_login: tuple[str, str]) -> tuple[str, str]:
    """A user of the auth app with no grants of its own (default permission: READ)."""
    user, password = f"user-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    created = requests.post(
        f"{server}/api/2.0/mlflow/users/create",
        json={"username": user, "password": password},
        auth=admin_login,
        timeout=60,
    )
    assert created.status_code == 200, created.text
    return user, password


def test_only_the_admin_creates_registered_models_or_moves_the_champion(postgres_tracking_server):
    admin_login = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
    admin = MlflowClient(postgres_tracking_server)
    name = f"profcast-rules-{uuid.uuid4().hex[:6]}"
    experiment_id = admin.create_experiment(name)
    run = admin.create_run(experiment_id)
    admin.create_registered_model(name)
    first = admin.create_model_version(name, f"runs:/{run.info.run_id}/profcast", run.info.run_id)
    second = admin.create_model_version(name, f"runs:/{run.info.run_id}/profcast", run.info.run_id)
    admin.set_registered_model_alias(name, "champion", first.version)

    user = new_user(postgres_tracking_server, admin_login)
    # Even MANAGE on the model, which lets its owner do anything else with it, does not move @champion.
    granted = requests.post(
        f"{postgres_tracking_server}/api/3.0/mlflow/users/permissions/grant",
        auth=admin_login,
        timeout=60,
        json={"username": user[0], "resource_type": "registered_model", "resource_id": name, "permission": "MANAGE"},
    )
    assert granted.status_code == 200, granted.text
    api = f"{postgres_tracking_server}/api/2.0/mlflow/registered-models"
    attempts = {
        "create a model named for another anchor": (
            "POST",
            "create",
            {"name": f"profcast-other-{uuid.uuid4().hex[:6]}"},
        ),
        "set @champion": ("POST", "alias", {"name": name, "alias": "champion", "version": second.version}),
        "delete @champion": ("DELETE", "alias", {"name": name, "alias": "champion"}),
    }
    for action, (method, path, body) in attempts.items():
        answer = requests.request(
            method, f"{api}/{path}", auth=user, timeout=60, **({"json": body} if method == "POST" else {"params": body})
        )
        assert answer.status_code == 403, (action, answer.status_code, answer.text)
    read = requests.get(f"{api}/get", params={"name": name}, auth=user, timeout=60)
    assert read.status_code == 200 and read.json()["registered_model"]["name"] == name  # reading stays open
    assert admin.get_registered_model(name).aliases == {"champion": first.version}
    assert (
        admin.search_registered_models(f"name = '{attempts['create a model named for another anchor'][2]['name']}'")
        == []
    )

    admin.set_registered_model_alias(name, "champion", second.version)  # the admin still may
    assert admin.get_model_version_by_alias(name, "champion").version == second.version


def test_the_server_folder_and_its_artifacts_are_private_to_the_server(
    postgres_tracking_server, postgres_tracking_server_folder, tmp_path
):
    import mlflow

    folder = postgres_tracking_server_folder
    mlflow.set_tracking_uri(postgres_tracking_server)
    experiment_id = MlflowClient().create_experiment(f"private-{uuid.uuid4().hex[:6]}")
    (tmp_path / "note.txt").write_text("uploaded through the server")
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_artifact(str(tmp_path / "note.txt"), artifact_path="notes")
    uploaded = [path for path in (folder / "artifacts").rglob("*")]
    assert any(path.name == "note.txt" for path in uploaded)
    for path in uploaded:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path} is {stat.S_IMODE(path.stat().st_mode):o}"
    assert stat.S_IMODE((folder / "artifacts").stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) & 0o007 == 0  # nothing for other accounts
    for log_file in ("server.log", "postgres.log", "server.json"):
        assert stat.S_IMODE((folder / log_file).stat().st_mode) == 0o600, log_file
    server_pid = tracking_server.read_state(folder).pid
    umask = next(line for line in open(f"/proc/{server_pid}/status") if line.startswith("Umask:"))
    assert umask.split()[1] == "0077"
