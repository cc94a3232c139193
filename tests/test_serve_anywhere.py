"""A logged job model carries its code and requirements: it loads and serves where profcast is not installed."""

import io
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from profcast.tracking.runs import SERVING_PACKAGES
from tests.conftest import store_with_trained_job

REPO = Path(__file__).resolve().parents[1]
REQUEST = json.loads((REPO / "examples" / "request.json").read_text())
# Run in a Python that has never seen the checkout: every sys.path entry holding a profcast (its src/, the
# editable install's path, another checkout's) and the working folder leave sys.path before anything is
# imported; the model then brings its own profcast.
HIDE_THE_CHECKOUT = (
    "import os, sys; sys.path = [p for p in sys.path if p not in ('', '.', {src!r})"
    " and not os.path.isdir(os.path.join(p, 'profcast'))]\n"
    "import json, mlflow, pandas as pd\n"
    "model = mlflow.pyfunc.load_model({folder!r})\n"
    "import profcast\n"
    "answer = model.predict(pd.read_json({example!r}, orient='split'))\n"
    "print(json.dumps({{'profcast': profcast.__file__, 'answer': answer.to_json(orient='split')}}))\n"
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, trained_job):
    trained = store_with_trained_job(trained_job, tmp_path_factory.mktemp("anywhere"))
    folder = trained["folder"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
        local = Path(mlflow.artifacts.download_artifacts(trained["model_uri"], dst_path=str(folder / "model")))
    return {**trained, "folder": local, "work": folder}


def test_the_model_folder_holds_profcast_and_its_serving_requirements(logged):
    folder = logged["folder"]
    flavour = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavour["loader_module"] == "profcast.serve.loader"
    assert (folder / flavour["code"] / "profcast" / "serve" / "loader.py").is_file()
    assert not list((folder / flavour["code"]).rglob("__pycache__"))
    required = {line.split("==")[0] for line in (folder / "requirements.txt").read_text().split()}
    assert required == set(SERVING_PACKAGES)


def test_a_python_that_never_saw_the_checkout_loads_it_and_answers_alike(run_cli, logged):
    folder = logged["folder"]
    example = folder / "input_example.json"
    script = HIDE_THE_CHECKOUT.format(src=str(REPO / "src"), folder=str(folder), example=str(example))
    ran = run_cli(["-c", script], cwd=logged["work"], env=dict(os.environ), timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(result["profcast"]).is_relative_to(folder)  # the model's own copy, not the checkout's
    here = mlflow.pyfunc.load_model(str(folder)).predict(pd.read_json(example, orient="split"))
    pd.testing.assert_frame_equal(
        pd.read_json(io.StringIO(result["answer"]), orient="split"),
        pd.read_json(io.StringIO(here.to_json(orient="split")), orient="split"),
    )


def test_mlflow_writes_a_docker_build_for_it(run_cli, logged, tmp_path):
    """`mlflow models build-docker` needs a Docker engine; generate-dockerfile is the same build without one."""
    written = run_cli(
        [
            "-m",
            "mlflow",
            "models",
            "generate-dockerfile",
            "-m",
            str(logged["folder"]),
            "-d",
            str(tmp_path / "image"),
        ],
        env=dict(os.environ),
        timeout=300,
    )
    assert written.returncode == 0, written.stderr[-2000:]
    assert "FROM python:" in (tmp_path / "image" / "Dockerfile").read_text()
    copied = list((tmp_path / "image" / "model_dir").rglob("code/profcast/serve/loader.py"))  # the model's code goes in
    assert len(copied) == 1


def answer(server) -> list:
    body = json.dumps(REQUEST).encode()
    request = urllib.request.Request(
        f"{server.url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.load(reply)["predictions"]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("uv") is None and not Path(sys.executable).with_name("uv").exists(), reason="uv not installed"
)
def test_served_in_its_own_environment_it_answers_as_served_locally(model_server, logged, tmp_path):
    """`mlflow models serve --env-manager uv` builds the model's environment from its requirements (from the
    package index), with no profcast installed in it, from a folder outside the checkout."""
    env = {
        # uv and this Python's own installation first: uv finds the model's Python version there, never downloads one
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), str(Path(sys._base_executable).resolve().parent), os.environ["PATH"]]
        ),
        "UV_PYTHON_DOWNLOADS": "never",
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),
        "UV_NATIVE_TLS": "1",  # the system's certificates, as pip uses them (a TLS-inspecting proxy's CA among them)
    }
    with model_server(str(logged["folder"]), tmp_path / "local.log") as local:
        expected = answer(local)
    try:
        with model_server(
            str(logged["folder"]), tmp_path / "uv.log", env=env, env_manager="uv", cwd=tmp_path, startup_seconds=900
        ) as own:
            served = answer(own)
    except RuntimeError:
        log = (tmp_path / "uv.log").read_text(errors="replace")
        if "error sending request" in log:  # no package index reachable here: nothing to build the environment from
            causes = [line.strip() for line in log.splitlines() if line.strip().startswith("cause:")]
            pytest.skip(f"the package index cannot be reached: {' '.join(causes[:2])}")
        raise
    assert served == expected
    environments = list((tmp_path / "envs").glob("*/lib/python*/site-packages"))
    assert environments and not list(environments[0].glob("profcast*"))  # profcast came with the model, not installed
