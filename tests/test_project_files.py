"""The project's own files agree with each other: pins, MLproject, CI and README commands."""

import tomllib

import yaml

from tests.conftest import REPO


def test_conda_env_pins_match_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    assert sorted(pip_section) == sorted(pyproject)


def test_mlproject_train_entry_point_passes_every_parameter():
    mlproject = yaml.safe_load((REPO / "MLproject").read_text())
    train = mlproject["entry_points"]["train"]
    assert train["command"].startswith("python -m profcast.train")
    for name in train["parameters"]:
        assert f"{name}={{{name}}}" in train["command"]


def test_ci_runs_the_readme_test_command():
    """CI installs as the README says, once, then runs the README's test command (the default tier) before the others."""
    readme = (REPO / "README.md").read_text()
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    install, test_command = 'pip install -e ".[test,torch,scale]"', "python -m pytest"
    assert f"{install} && {test_command}" in readme
    assert [line for line in ci_lines if line.startswith("pip install")] == [install]
    tiers = [line for line in ci_lines if line.startswith(test_command)]
    assert tiers == [
        test_command,
        f'{test_command} -m "(integration or e2e) and not alone" -n 2 --dist loadgroup',
        f"{test_command} -m alone",
    ]
    assert ci_lines.index(install) < ci_lines.index(test_command)


def test_make_test_all_runs_the_tiers_as_ci_does():
    """`make test-all` is CI's test lines, in CI's order: the default tier, then the others on two workers."""
    makefile = (REPO / "Makefile").read_text().splitlines()
    start = next(number for number, line in enumerate(makefile) if line.startswith("test-all:"))
    recipe = []
    for line in makefile[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    ci_tiers = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python -m pytest")]
    assert recipe == ci_tiers
