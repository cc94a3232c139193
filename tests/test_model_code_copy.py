"""A job model loaded in-process (mlflow.pyfunc.load_model) never replaces the importing process's profcast.

MLflow puts the model's copy of profcast (its ``code`` folder) first on ``sys.path``; left there, later
imports and worker processes found the copy, and Hydra looked for ``conf/`` in it (issue 29).
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

import profcast
from profcast.serve import code_copy
from tests.conftest import TRAINED_JOB_TARGETS, compose_train

OWN_PROFCAST = Path(profcast.__file__).resolve().parent


@pytest.fixture
def model_folder(trained_job, tmp_path, monkeypatch) -> Path:
    """The shared job's model folder, downloaded (with its code copy beside MLmodel); sys.path restored after."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_job["uri"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    return Path(mlflow.artifacts.download_artifacts(trained_job["model_uri"], dst_path=str(tmp_path / "model")))


def test_the_model_folder_carries_a_copy_of_profcast(model_folder):
    code = model_folder / "code"
    assert code_copy.is_model_code_copy(str(code)) and not code_copy.is_model_code_copy(str(OWN_PROFCAST.parent))


def test_loading_a_model_in_process_leaves_this_process_profcast_first(model_folder):
    model = mlflow.pyfunc.load_model(str(model_folder))

    assert not [entry for entry in sys.path if code_copy.is_model_code_copy(entry)]
    found = importlib.machinery.PathFinder.find_spec("profcast", sys.path)  # what a new import or a worker finds
    assert Path(next(iter(found.submodule_search_locations))).resolve() == OWN_PROFCAST
    cfg = compose_train(["regressor=ratio"])  # Hydra still finds conf/ (it looked in the copy)
    assert cfg.regressor._target_.startswith("profcast.")
    example = pd.read_json(model_folder / "input_example.json", orient="split")
    assert len(model.predict(example)) == len(example) * len(TRAINED_JOB_TARGETS)  # a row per request row and target


def test_the_copy_stays_where_it_is_the_only_profcast(tmp_path, monkeypatch):
    """As inside `mlflow models serve` in the model's own environment: nothing else to import profcast from."""
    code = tmp_path / "model" / "code"
    (code / "profcast" / "serve").mkdir(parents=True)
    (code / "profcast" / "__init__.py").write_text("")
    (code / "profcast" / "serve" / "loader.py").write_text("")
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    monkeypatch.setattr(sys, "path", [str(code)])

    assert code_copy.drop_model_code_copies() is None
    assert sys.path == [str(code)]


def test_a_fresh_process_that_loads_the_model_first_imports_its_own_profcast_after(model_folder, run_cli):
    """load_model before any profcast import (a notebook's first cell): the copy's loader hands over to the
    process's own profcast, and what is imported later is that one."""
    script = (
        "import json, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(model_folder)!r})\n"
        "import profcast.config, profcast.serve.loader\n"
        "profcast.config.compose_train_config(['regressor=ratio'])\n"
        f"answer = model.predict(pd.read_json({str(model_folder / 'input_example.json')!r}, orient='split'))\n"
        "print(json.dumps({'config': profcast.config.__file__, 'loader': profcast.serve.loader.__file__,"
        " 'model': type(model._model_impl).__module__, 'rows': len(answer)}))\n"
    )
    ran = run_cli(["-c", script], cwd=model_folder.parent, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    own_src = str(Path(__file__).resolve().parents[1] / "src")
    assert result["config"].startswith(own_src) and result["loader"].startswith(own_src), result
    assert not result["config"].startswith(str(model_folder))
    assert result["model"] == "profcast.serve.loader" and result["rows"] > 0
