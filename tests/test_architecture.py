"""The package's shape: layers that import one way (import-linter's contracts in pyproject.toml), and job
models logged before the package was named profcast still load and answer as they did."""

import io
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LEGACY_MODEL = (
    REPO / "tests" / "data" / "legacy_src_model"
)  # logged by the code of 9a38112 (loader src.serve.job_model)
LEGACY_ANSWER = (
    REPO / "tests" / "data" / "legacy_src_model_expected.csv"
)  # what that code answered to its input example


@pytest.fixture
def lint_imports(run_cli):
    """lint_imports(package_parent) -> CompletedProcess: import-linter's contracts checked on the profcast there."""
    return lambda package_parent: run_cli(
        ["--config", str(REPO / "pyproject.toml"), "--no-cache"],
        program=LINT_IMPORTS,
        env={**os.environ, "PYTHONPATH": str(package_parent)},
        timeout=300,
    )


def test_import_contracts_hold(lint_imports):
    linted = lint_imports(REPO / "src")
    assert linted.returncode == 0, linted.stdout[-3000:] + linted.stderr[-2000:]
    assert "0 broken" in linted.stdout


@pytest.mark.parametrize(
    "module, upward_import",
    [
        ("tracking/runs.py", "import profcast.serve.recommend"),  # tracking -> serve: the cycle there was
        ("ingest/tables.py", "import profcast.datasets.embedded"),  # ingest -> generated data: the other one
        ("jobmodel/model.py", "import mlflow"),  # the job model stays free of MLflow
        ("jobmodel/forecast_columns.py", "import profcast.pipeline.calibration"),  # serving never imports training
    ],
)
def test_an_upward_import_breaks_a_contract(lint_imports, tmp_path, module, upward_import):
    copy = tmp_path / "profcast"
    shutil.copytree(REPO / "src" / "profcast", copy, ignore=shutil.ignore_patterns("__pycache__", "conf"))
    path = copy / module
    path.write_text(path.read_text() + f"\n{upward_import}\n")
    linted = lint_imports(tmp_path)
    assert linted.returncode != 0 and "BROKEN" in linted.stdout, linted.stdout[-2000:]


def test_a_model_logged_before_the_rename_loads_and_answers_as_before():
    """Its MLmodel names src.serve.job_model and its skops files src.models.*; profcast reads it anyway."""
    from profcast.serve.model_folder import load_checked_model

    model = load_checked_model(LEGACY_MODEL)
    example = pd.read_json(LEGACY_MODEL / "input_example.json", orient="split")
    answer = pd.read_csv(io.StringIO(model.predict(example).to_csv(index=False)))  # written as the old answer was
    pd.testing.assert_frame_equal(answer, pd.read_csv(LEGACY_ANSWER), check_exact=True)
    # Read by profcast's own code: no src.* module was imported for it, none is left aliased.
    assert not [name for name in sys.modules if name.startswith(("src.models", "src.serve"))]


def test_a_legacy_name_is_trusted_only_as_the_profcast_class_it_stands_for():
    from profcast.jobmodel.legacy import current_type_name
    from profcast.jobmodel.storage import _trusted

    assert _trusted(current_type_name("src.models.ratio.MedianRatioRegressor"))
    assert not _trusted(current_type_name("src.models.ratio.np"))  # a name the module imports is not a class of ours
    assert not _trusted(current_type_name("src.models.nosuch.Thing"))
    assert not _trusted("src.evil.Payload")


@pytest.mark.slow
def test_a_model_logged_before_the_rename_still_serves_from_a_checkout(model_server, tmp_path):
    """`mlflow models serve` imports the loader its MLmodel names (src.serve.job_model): from a checkout
    that name still resolves, through today's loader, and the server answers as the old code did."""
    import json
    import urllib.request

    example = json.loads((LEGACY_MODEL / "serving_input_example.json").read_text())
    with model_server(str(LEGACY_MODEL), tmp_path / "server.log", cwd=REPO) as server:
        request = urllib.request.Request(
            f"{server.url}/invocations", data=json.dumps(example).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as reply:
            answer = pd.DataFrame(json.load(reply)["predictions"])
    answer = pd.read_csv(io.StringIO(answer.to_csv(index=False)))
    pd.testing.assert_frame_equal(answer, pd.read_csv(LEGACY_ANSWER), check_exact=False, rtol=1e-12)
