"""The test tiers: each test marked ``integration`` or ``e2e`` from the fixtures it uses, the default tier in-process.

tests/conftest.py imports the hooks below; docs/testing.md says which fixture puts a test in which tier, and
which tests a parallel run (pytest-xdist) keeps on one worker (``parallel_group``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A fixture that starts a process, a server or a browser puts every test using it in `integration`; one
# that runs a real sweep or a job on real data end to end puts it in `e2e`. A new such fixture belongs here.
INTEGRATION_FIXTURES = frozenset(
    {
        "run_cli",  # a profcast command in its own process (tests/commands.py)
        "start_cli",  # the same, left running (to signal it)
        "model_server",  # `mlflow models serve` on a free port
        "postgres_tracking_server",  # PostgreSQL + `mlflow server`, once per run
        "postgres_tracking_server_folder",
        "ray_temp_dir",  # a local Ray cluster
        "browser_page",  # Chromium driven by Playwright
    }
)
E2E_FIXTURES = frozenset({"real_profet"})  # the real PROFET table, trained on
# `slow` (the former name of the e2e tier) still marks a test e2e by hand; prefer an e2e fixture.
E2E_MARKS = ("slow", "e2e")
# A parallel run (pytest-xdist, `-n 2 --dist loadgroup`) starts session fixtures once per worker: the tests
# of one started once per run share one worker (the Ray sweeps use the PostgreSQL server too).
ONE_WORKER_FIXTURES = frozenset({"postgres_tracking_server_folder"})
ONE_WORKER_GROUP = "postgres"
# What a default-tier test may not start: Python (a profcast command), servers and browsers.
PROCESS_PROGRAMS = (
    "python",
    "mlflow",
    "profcast",
    "lint-imports",
    "chromium",
    "postgres",
    "pg_ctl",
    "initdb",
    "ray",
    "uv",
)


def tier_of(item) -> str:
    """``e2e``, ``integration`` or ``default``, from the fixtures ``item`` uses and its hand marks."""
    used = set(getattr(item, "fixturenames", ()))
    if used & E2E_FIXTURES or any(item.get_closest_marker(mark) for mark in E2E_MARKS):
        return "e2e"
    if used & INTEGRATION_FIXTURES or item.get_closest_marker("integration"):
        return "integration"
    return "default"


def parallel_group(module: str, fixtures, module_fixtures, module_uses_one_worker: bool = False) -> str | None:
    """The pytest-xdist group a test runs in (``--dist loadgroup``), or None: any worker may take it alone."""
    if set(fixtures) & ONE_WORKER_FIXTURES or (module_fixtures and module_uses_one_worker):
        return ONE_WORKER_GROUP
    # A module fixture is built once by each worker that runs one of its tests: keep its tests on one worker.
    return module if module_fixtures else None


def module_of(item) -> str:
    """The test file's node id (``tests/test_x.py``), the base id of the fixtures it defines."""
    return item.nodeid.split("::")[0]


def module_fixtures_of(item) -> set[str]:
    """The module-scoped fixtures ``item`` uses that its own module defines (conftest's autouse one is cheap)."""
    info = getattr(item, "_fixtureinfo", None)  # a test function's; other items (a doctest) share no fixtures
    definitions_by_name = info.name2fixturedefs if info is not None else {}
    used = {name: definitions[-1] for name, definitions in definitions_by_name.items() if definitions}
    return {
        name
        for name, fixture in used.items()
        if fixture.scope in ("module", "class") and fixture.baseid == module_of(item)
    }


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups and ``-m`` deselects by tier
def pytest_collection_modifyitems(config, items):
    """Mark each test with its tier, so ``-m`` selects tiers and the default run stays in-process; and with its
    pytest-xdist group, so a parallel run builds each module fixture and the PostgreSQL server once."""
    # A module whose fixtures some PostgreSQL test shares sends all its fixture users to that one worker.
    one_worker_modules = {
        module_of(item) for item in items if set(getattr(item, "fixturenames", ())) & ONE_WORKER_FIXTURES
    }
    for item in items:
        tier = tier_of(item)
        if tier != "default":
            item.add_marker(getattr(pytest.mark, tier))
        fixtures, module = getattr(item, "fixturenames", ()), module_of(item)
        group = parallel_group(module, fixtures, module_fixtures_of(item), module in one_worker_modules)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def starts_a_process(args) -> bool:
    """Whether a command line starts one of PROCESS_PROGRAMS, itself or through a shell's ``-c``."""
    words = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    words = [os.fsdecode(word) for word in words if isinstance(word, (str, bytes, os.PathLike))]
    if not words:
        return False
    programs = [words[0].split()[0]] if words[0].strip() else []
    if Path(programs[0] if programs else "").name in ("bash", "sh") and "-c" in words:
        programs += [
            command.split()[0] for command in " ".join(words[words.index("-c") + 1 :]).split("|") if command.strip()
        ]
    return any(
        Path(program).name.startswith(PROCESS_PROGRAMS) or Path(program).resolve() == Path(sys.executable).resolve()
        for program in programs
    )


class InProcessOnly(subprocess.Popen):
    """subprocess.Popen for a default-tier test: starting Python, a server or a browser fails the test."""

    def __init__(self, args, *rest, **kwargs):
        if starts_a_process(args):
            pytest.fail(
                f"a default-tier test started a process ({args!r}): use the run_cli, start_cli or model_server "
                "fixture (integration tier, docs/testing.md)",
                pytrace=False,
            )
        super().__init__(args, *rest, **kwargs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with in_process_only(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with in_process_only(item):
        return (yield)


class in_process_only:
    """While a default-tier test (and its fixtures) runs, subprocess.Popen refuses to start PROCESS_PROGRAMS."""

    def __init__(self, item):
        self.active = tier_of(item) == "default"

    def __enter__(self):
        if self.active:
            self.saved, subprocess.Popen = subprocess.Popen, InProcessOnly

    def __exit__(self, *exc):
        if self.active:
            subprocess.Popen = self.saved
