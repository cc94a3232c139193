"""The docs name only things that exist: every module of the package in docs/architecture.md, and every
`python -m` command, `profcast.<name>`, `make` target, `conf/` file and source path in README.md and docs/."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re

import pytest

import profcast
from profcast.cli import COMMANDS
from tests.conftest import REPO, compose_train

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# Named on purpose although they do not exist in this checkout (keep this list short, say why).
ALLOWED_MISSING: dict[str, str] = {}

# Names such as the MLflow tags `profcast.data_kind` are strings the code writes, not modules.
TAG_NAMES = {
    name
    for source in (REPO / "src" / "profcast").rglob("*.py")
    for name in re.findall(r"[\"'](profcast\.[\w.]+)[\"']", source.read_text())
}

COMMAND = re.compile(r"python -m ([A-Za-z_][\w.]*)")
# `profcast <command>` shown to run: in backticks, after a prompt or &&, or opening a line of a code block.
CLI_COMMAND = re.compile(r"(?:`|\$ |&& )profcast ([a-z][\w-]*)")
CODE_BLOCK = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", flags=re.M | re.S)
CODE_LINE_COMMAND = re.compile(r"^\s*profcast ([a-z][\w-]*)", flags=re.M)
DOTTED = re.compile(r"(?<![\w./-])(profcast(?:\.[A-Za-z_]\w*)+)")
MAKE = re.compile(r"(?:`|^\s*|\$ )make ([a-z][a-z-]*)", flags=re.M)
IMPORT = re.compile(r"^\s*from ((?:profcast|src)[\w.]*) import ([\w, ]+)", flags=re.M)
LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")
PATH = re.compile(r"(?<![\w./-])((?:conf|src|benchmarks|examples|tests)/[\w./-]*[\w/])")


def package_modules() -> list[str]:
    """Every module and subpackage of profcast, dotted, without ``__main__``/``__init__``."""
    found = [profcast.__name__]
    for info in pkgutil.walk_packages(profcast.__path__, prefix="profcast."):
        if not info.name.endswith("__main__"):
            found.append(info.name)
    return found


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))


def stale_references(text: str, targets: set[str], folder=REPO) -> list[str]:
    """The commands, dotted names, imports, make targets, repository paths and relative links (from
    ``folder``) named in ``text`` that do not exist."""
    stale = []
    written_by_the_page = set(re.findall(r"# file: (\S+)", text))  # docs/extending.md's worked examples
    for module in COMMAND.findall(text):
        module = module.rstrip(".")
        if module in ("pytest", "venv", "pip") or module in ALLOWED_MISSING:
            continue
        try:  # src.*, benchmarks.* resolve from the repository root, which the tests put on sys.path
            exists = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            exists = False
        if not exists:
            stale.append(f"python -m {module}")
    shown = CLI_COMMAND.findall(text) + [
        name for block in CODE_BLOCK.findall(text) for name in CODE_LINE_COMMAND.findall(block)
    ]
    stale += [f"profcast {name}" for name in shown if name not in COMMANDS]
    for dotted in DOTTED.findall(text):
        dotted = dotted.rstrip(".")
        if dotted not in ALLOWED_MISSING and dotted not in TAG_NAMES and not resolves(dotted):
            stale.append(dotted)
    for module, names in IMPORT.findall(text):
        stale += [
            f"from {module} import {name.strip()}"
            for name in names.split(",")
            if name.strip() and not resolves(f"{module}.{name.strip()}")
        ]
    stale += [f"make {name}" for name in MAKE.findall(text) if name not in targets]
    for path in PATH.findall(text):
        if path in ALLOWED_MISSING or path in written_by_the_page:
            continue
        if not (REPO / path).exists():
            stale.append(path)
    for link in LINK.findall(text):
        target = (folder / link).resolve()
        if not target.exists() and target.relative_to(REPO.resolve()).as_posix() not in ALLOWED_MISSING:
            stale.append(link)
    return stale


TRAIN = re.compile(r"(?:python -m (?:src|profcast)\.train|(?<![\w.-])profcast train)(?![\w.])((?:[ \t]+[^\s`#|\\]+)*)")


def train_overrides(text: str) -> list[list[str]]:
    """The overrides of each complete ``python -m src.train`` command in ``text``, one value per swept key
    (a sweep's ``a,b,c`` composes as ``a``); Hydra's own settings and placeholders are left out."""
    commands = []
    for tail in TRAIN.findall(text):
        tokens = tail.split()
        if any("<" in token or "..." in token or token == "key=value" for token in tokens):
            continue
        overrides = []
        for token in tokens:
            if token in ("-m", "--multirun") or token.lstrip("+").startswith("hydra"):
                continue
            key, _, value = token.partition("=")
            if "," in value and not value.startswith("["):
                value = value.split(",")[0]
            overrides.append(f"{key}={value}")
        commands.append(overrides)
    return commands


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is an importable module or an attribute reached from one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            thing = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(thing, name):
                return False
            thing = getattr(thing, name)
        return True
    return False


def test_architecture_names_every_module_of_the_package():
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = []
    for module in package_modules():
        dotted_name = module
        relative = module.replace(".", "/")
        short = "/".join(module.split(".")[-2:])  # package/module, e.g. serve/loader
        if not any(
            re.search(rf"(?<![\w./]){re.escape(name)}(?![\w])", text) for name in (dotted_name, relative, short)
        ):
            missing.append(module)
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_command_name_target_and_path_a_doc_names_exists(doc, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # python -m src.* runs from the repository root
    assert stale_references(doc.read_text(), make_targets(), doc.parent) == []


@pytest.mark.parametrize("doc", [doc for doc in DOCS if doc.name != "extending.md"], ids=lambda path: path.name)
def test_every_train_command_a_doc_shows_composes(doc):
    """Config spellings in the docs are the config's (extending.md's own options: tests/test_extending.py)."""
    for overrides in train_overrides(doc.read_text()):
        compose_train(overrides)  # an unknown group, option or key raises


def test_train_commands_are_parsed_into_composable_overrides():
    text = """python -m src.train -m regressor=rf,knn anchor=g3s.xlarge hydra/launcher=ray split.holdout=[a,b]
    `python -m src.train regressor=<name>` and `python -m profcast.train whatif.enabld=false`
    $ profcast train anchor=p3.2xlarge
    and profcast trains one model per target"""
    assert train_overrides(text) == [
        ["regressor=rf", "anchor=g3s.xlarge", "split.holdout=[a,b]"],
        ["whatif.enabld=false"],
        ["anchor=p3.2xlarge"],
    ]
    with pytest.raises(Exception, match="whatif.enabld"):
        compose_train(train_overrides(text)[1])


def test_the_parser_finds_each_kind_of_stale_reference():
    text = """
    Run `python -m src.train -m regressor=rf` then `python -m src.no_such_command` and `python -m benchmarks.accuracy`;
    `profcast predict --help` is there, `profcast deploy` is not, and profcast forecasts in prose.
    ```bash
    profcast collect suite --suite smoke
    profcast serve --port 1
    ```
    `profcast.train.train` works, `profcast.serve.job_model` moved, `profcast.pipeline.calibration.no_such_function`
    never was. `make test` is there, `make deploy` is not. See conf/train.yaml, conf/regressor/mine.yaml (below)
    and conf/regressor/warp.yaml,
    src/profcast/regressors/transfer.py and src/models/transfer.py; [serving](docs/serving.md), [gone](docs/gone.md).
    Tag `profcast.data_kind` is written by the code.

    ```yaml
    # file: conf/regressor/mine.yaml
    ```

    ```python
    from profcast.datasets.embedded import load_embedded_profiles, no_such_loader
    from src.embedded import load_embedded_profiles
    ```
    """
    assert stale_references(text, make_targets()) == [
        "python -m src.no_such_command",
        "profcast deploy",
        "profcast serve",
        "profcast.serve.job_model",
        "profcast.pipeline.calibration.no_such_function",
        "from profcast.datasets.embedded import no_such_loader",
        "from src.embedded import load_embedded_profiles",
        "make deploy",
        "conf/regressor/warp.yaml",
        "src/models/transfer.py",
        "docs/gone.md",
    ]


def test_the_module_walk_sees_subpackages_and_leaves():
    modules = package_modules()
    assert {"profcast.jobmodel", "profcast.jobmodel.storage", "profcast.serve.loader", "profcast.cli"} <= set(modules)
    assert not any(module.endswith("__main__") for module in modules)
