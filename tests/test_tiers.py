"""The tiers sort themselves: a test's fixtures decide its tier, and a default-tier test cannot start a process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.tiers import (
    E2E_FIXTURES,
    INTEGRATION_FIXTURES,
    parallel_group,
    starts_a_process,
    tier_of,
)

pytest_plugins = ["pytester"]  # runs the tier hook on test files of its own


class FakeItem:
    """What tier_of reads of a collected test: the fixtures it uses (closure) and its hand marks."""

    def __init__(self, fixtures=(), marks=()):
        self.fixturenames = list(fixtures)
        self.marks = set(marks)

    def get_closest_marker(self, name):
        return name if name in self.marks else None


@pytest.mark.parametrize(
    "fixtures, marks, tier",
    [
        (["tmp_path", "trained_job", "tracking_uri"], [], "default"),
        (["tmp_path", "run_cli"], [], "integration"),
        (["server", "model_server", "trained"], [], "integration"),  # through a module fixture that asks for it
        (["postgres_tracking_server_folder"], [], "integration"),
        (["run_cli", "real_profet"], [], "e2e"),  # e2e wins over integration
        (["run_cli"], ["slow"], "e2e"),  # the former name of e2e
        (["tmp_path"], ["e2e"], "e2e"),
    ],
)
def test_the_fixtures_used_decide_the_tier(fixtures, marks, tier):
    assert tier_of(FakeItem(fixtures, marks)) == tier


def test_the_tier_fixtures_are_named_in_conftest(request):
    """Every fixture the rules name exists, so a typo cannot leave its tests in the default tier."""
    defined = request.session._fixturemanager._arg2fixturedefs
    module_fixtures = {"browser_page"}  # tests/test_web.py's own
    assert (INTEGRATION_FIXTURES | E2E_FIXTURES) - module_fixtures <= set(defined)


@pytest.mark.parametrize(
    "args, starts",
    [
        ([sys.executable, "-m", "profcast.train"], True),
        ("/usr/bin/chromium --headless", True),
        (["/work/venv/bin/lint-imports", "--no-cache"], True),
        (["bash", "-o", "pipefail", "-c", f"{sys.executable} script.py | head -1"], True),
        (["git", "rev-parse", "HEAD"], False),
        (["bash", "-c", "echo hi | head -1"], False),
        ([], False),
    ],
)
def test_what_counts_as_starting_a_process(args, starts):
    assert starts_a_process(args) is starts


def test_a_default_tier_test_that_starts_python_fails_naming_the_fixture():
    with pytest.raises(pytest.fail.Exception, match="run_cli"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    assert subprocess.run(["true"], check=False).returncode == 0  # other tools still run


@pytest.mark.parametrize(
    "fixtures, module_fixtures, module_uses_postgres, group",
    [
        (["tmp_path", "run_cli", "trained_job"], set(), False, None),  # session fixtures only: any worker
        (["server", "model_server", "trained"], {"server", "trained"}, False, "tests/test_x.py"),
        (["postgres_tracking_server", "postgres_tracking_server_folder"], set(), False, "postgres"),
        (["sweep", "tmp_path"], {"sweep"}, True, "postgres"),  # shares a module fixture with a PostgreSQL test
        (["tmp_path"], set(), True, None),  # nothing shared with them
    ],
)
def test_a_parallel_run_keeps_what_tests_share_on_one_worker(fixtures, module_fixtures, module_uses_postgres, group):
    assert parallel_group("tests/test_x.py", fixtures, module_fixtures, module_uses_postgres) == group


SHARING_FILES = {
    "test_shares": """
import pytest

@pytest.fixture(scope="module")
def sweep():
    return "built once per worker"

def test_alone(tmp_path):
    pass

def test_first(sweep):
    pass

def test_second(sweep, tmp_path):
    pass
""",
    "test_server": """
import pytest

@pytest.fixture(scope="session")
def postgres_tracking_server_folder():
    return "started once per run"

@pytest.fixture(scope="module")
def jobs():
    return "trained once"

def test_on_the_server(postgres_tracking_server_folder, jobs):
    pass

def test_beside_it(jobs):
    pass
""",
}


def test_the_hook_groups_the_tests_that_share_a_module_fixture_or_the_server(pytester):
    """Through pytest's own collection: the groups pytest-xdist's loadgroup reads, per collected test."""
    pytester.makeconftest("from tests.tiers import pytest_collection_modifyitems  # noqa: F401")
    pytester.makepyfile(**SHARING_FILES)
    items, _ = pytester.inline_genitems("-m", "", "-p", "no:randomly")
    groups = {item.name: [mark.args[0] for mark in item.iter_markers("xdist_group")] for item in items}
    assert groups == {
        "test_alone": [],
        "test_first": ["test_shares.py"],
        "test_second": ["test_shares.py"],
        "test_on_the_server": ["postgres"],
        "test_beside_it": ["postgres"],  # its module fixture is shared with a server test
    }


def test_each_worker_of_a_parallel_run_gets_its_share_of_the_cores():
    from tests.worker_cores import THREAD_VARIABLES, WORKER_COUNT, share_the_cores_between_workers

    two_workers = {WORKER_COUNT: "2"}
    assert share_the_cores_between_workers(two_workers, cores=2) == 1
    assert all(two_workers[name] == "1" for name in THREAD_VARIABLES)
    eight_cores = {WORKER_COUNT: "2"}
    assert share_the_cores_between_workers(eight_cores, cores=8) == 4 and eight_cores["OMP_NUM_THREADS"] == "4"
    crowded = {WORKER_COUNT: "3"}
    assert share_the_cores_between_workers(crowded, cores=2) == 1  # never zero threads
    users_own = {WORKER_COUNT: "2", "OMP_NUM_THREADS": "2"}
    share_the_cores_between_workers(users_own, cores=2)
    assert users_own["OMP_NUM_THREADS"] == "2" and users_own["MKL_NUM_THREADS"] == "1"  # the user's setting is kept
    for alone in ({}, {WORKER_COUNT: "1"}):  # not a parallel run: nothing changes
        assert share_the_cores_between_workers(alone, cores=2) is None
        assert not any(name in alone for name in THREAD_VARIABLES)
