"""The package's shape: layers that import one way (import-linter's contracts in pyproject.toml), and job
models logged before the package was named profcast still load and answer as they did."""

import io
import json
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
        ("tracking/runs.py", "import profcast.forecast.recommend"),  # tracking -> serve: the cycle there was
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


def test_prediction_finds_the_store_without_the_training_config(tmp_path, monkeypatch):
    import mlflow

    import profcast.config
    from profcast.errors import ProfcastError
    from profcast.forecast import recommend
    from profcast.predict import main

    def refuse(*args, **kwargs):
        raise AssertionError("prediction composed the training config")

    asked = []

    def load_job_model(model_uri, anchor, alias):  # what the real one is asked, in the store it would read
        asked.append((mlflow.get_tracking_uri(), anchor, alias))
        raise ProfcastError("no model")

    monkeypatch.setattr(profcast.config, "compose_train_config", refuse)
    monkeypatch.setattr(recommend, "load_job_model", load_job_model)
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    profile = str(REPO / "examples" / "profiles" / "vggsmall_cifar10_g3s.csv")
    for alias in ([], ["--alias", "staging"]):
        with pytest.raises(ProfcastError, match="no model"):
            main(["--profile", profile, "--anchor", "g3s.xlarge", *alias])
    mlflow.set_tracking_uri(None)
    assert asked == [(store, "g3s.xlarge", "champion"), (store, "g3s.xlarge", "staging")]


def test_predictions_default_alias_is_the_configs():
    from profcast.champions.register import DEFAULT_ALIAS
    from profcast.config import compose_train_config

    assert compose_train_config().registry.alias == DEFAULT_ALIAS


# ---- import-graph tools see the package ---------------------------------------------------------------
PACKAGE = REPO / "src" / "profcast"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def written_imports() -> list[tuple[str, str]]:
    """(importer, imported module) for every absolute import statement in the package, at any depth, read from
    the source text; ``from a import b`` counts a.b when b is one of the package's modules, else a."""
    import ast

    modules = {module_name(path) for path in PACKAGE.rglob("*.py")}
    edges = []
    for path in PACKAGE.rglob("*.py"):
        importer = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                named = [f"{node.module}.{alias.name}" for alias in node.names]
                named = [name if name in modules else node.module for name in named]
            else:
                continue
            edges += [(importer, name) for name in named]
    return edges


def written_profcast_imports() -> set[tuple[str, str]]:
    """(importer, imported module) for every ``profcast.*`` import statement in the package (``written_imports``)."""
    return {
        (importer, name) for importer, name in written_imports() if name.startswith("profcast.") and name != importer
    }


def other_imported_packages() -> set[str]:
    """The top-level names of every package other than profcast that the package's code imports."""
    return {name.partition(".")[0] for _, name in written_imports()} - {"profcast", "__future__"}


def test_import_linters_graph_sees_every_profcast_import(run_cli):
    # grimp is the library lint-imports builds its graph with; run apart so no module here is pre-imported.
    written = written_profcast_imports()
    assert len(written) > 300  # the package's own imports, read from its text: not an empty walk
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    script = (
        "import grimp, json; graph = grimp.build_graph('profcast', cache_dir=None); "
        "print(json.dumps([[m, i] for m in graph.modules for i in graph.find_modules_directly_imported_by(m)]))"
    )
    found = run_cli(["-c", script], env=env)
    assert found.returncode == 0, found.stderr
    seen = {tuple(edge) for edge in json.loads(found.stdout)}
    assert written - seen == set()


@pytest.mark.slow
def test_pydeps_sees_every_profcast_import(run_cli, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    pydeps = Path(sys.executable).with_name("pydeps")
    # The other packages the code imports (the standard library's too) are left out (-x): pydeps then reads
    # profcast alone, in a second instead of walking torch's and MLflow's sources for half a minute.
    others = [pattern for name in sorted(other_imported_packages()) for pattern in (name, f"{name}.*")]
    shown = run_cli(
        [str(PACKAGE), "--show-deps", "--no-output", "--max-bacon", "0", "--only", "profcast", "-x", *others],
        cwd=tmp_path,
        env=env,
        program=pydeps,
    )
    assert shown.returncode == 0, shown.stderr
    seen = {
        (module, imported) for module, info in json.loads(shown.stdout).items() for imported in info.get("imports", [])
    }
    assert written_profcast_imports() - seen == set()


def test_estimators_saved_under_an_old_package_name_resolve_to_the_regressors():
    import importlib

    from profcast.jobmodel.legacy import current_type_name, legacy_names_resolved
    from profcast.regressors.ratio import MedianRatioRegressor

    for old in ("src.models.ratio.MedianRatioRegressor", "profcast.models.ratio.MedianRatioRegressor"):
        assert current_type_name(old) == "profcast.regressors.ratio.MedianRatioRegressor"
        with legacy_names_resolved([old]):  # what skops imports while such a file loads
            assert importlib.import_module(old.rpartition(".")[0]).MedianRatioRegressor is MedianRatioRegressor
        assert old.rpartition(".")[0] not in sys.modules  # and only while it loads
    assert current_type_name("sklearn.neighbors.KNeighborsRegressor") == "sklearn.neighbors.KNeighborsRegressor"


def test_the_commands_fast_path_loads_neither_mlflow_nor_matplotlib_nor_torch(run_cli):
    # What `profcast train --help`, `profcast predict --help` and a refused input import before answering.
    script = (
        "import sys, profcast.cli, profcast.train, profcast.predict, profcast.registry, profcast.convert; "
        "print(' '.join(name for name in ('mlflow', 'matplotlib', 'torch') if name in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    loaded = run_cli(["-c", script], env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == []


# the libraries a module may import inside a function (docs/architecture.md): heavy or optional ones only
LAZY_LIBRARIES = ("mlflow", "torch", "matplotlib", "hydra", "skops", "psycopg2", "alembic", "uvicorn")
# our own modules that load one of them at import (profcast.tracking loads MLflow)
LAZY_OWN_MODULES = ("profcast.tracking",)


def lazy_imports(package: Path) -> list[tuple[str, str]]:
    """(file:line, imported module) of every import that carries ruff's PLC0415 exemption."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "noqa: PLC0415" in line:
                words = line.split()
                found.append((f"{path.relative_to(package)}:{number}", words[1]))
    return found


def test_lazy_imports_are_only_of_the_named_heavy_or_optional_libraries():
    """A lazy import elsewhere breaks the rule the docs state; the noqa reason alone would not stop it."""
    package = Path(__file__).resolve().parents[1] / "src" / "profcast"
    found = lazy_imports(package)
    assert found, "the scan found no lazy import: it is not reading the package"
    allowed = LAZY_LIBRARIES + LAZY_OWN_MODULES
    strays = [
        (where, module)
        for where, module in found
        if module.split(".")[0] not in LAZY_LIBRARIES and not module.startswith(LAZY_OWN_MODULES)
    ]
    assert not strays, f"lazy imports outside {allowed}: {strays}"
    documented = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    for library in {module.split(".")[0] for _, module in found} - {"profcast"}:
        assert library.lower() in documented.lower(), f"docs/architecture.md does not name the lazy {library}"
