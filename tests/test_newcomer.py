"""A new user's path: one store every MLflow tool finds, examples that run, what a forecast stands
on, progress, registry comparability, and configs that travel with the package."""

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
import yaml

from profcast.champions.register import best_runs_by_anchor, champion_uri, register_job
from profcast.config import CONF_DIR, cache_root
from profcast.datasets.fingerprint import data_fingerprint
from profcast.progress import attached_to_terminal, track
from profcast.tracking import provenance
from profcast.tracking.store import DEFAULT_TRACKING_URI, tracking_uri
from profcast.train import train
from tests.conftest import REPO, TRAINED_JOB_ANCHOR, compose_train, synthetic_profiles

EXAMPLES = REPO / "examples"


@pytest.fixture
def python_in(run_cli):
    """python_in(folder, code, **env_changes): run ``code`` in a fresh interpreter started in ``folder`` with
    MLFLOW_TRACKING_URI unset."""

    def run(folder, code, **env_changes):
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("MLFLOW_TRACKING_URI", "PROFCAST_PARENT_RUN_ID")
        }
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])  # this checkout's profcast
        env.update(env_changes)
        return run_cli(["-c", code], cwd=folder, env=env, timeout=300)

    return run


@pytest.fixture
def project_folder(tmp_path, monkeypatch, empty_tracking_database):
    """A working folder with MLflow's default store (./mlflow.db, tables made) and no URI in the environment."""
    shutil.copy(empty_tracking_database, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
    profiles = tmp_path / "profiles.csv"
    synthetic_profiles().to_csv(profiles, index=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


def small_job(profiles, *extra):
    return compose_train(["data=file", f"data.path={profiles}", "anchor=slow.gpu", "regressor=ratio", *extra])


# --- one store ------------------------------------------------------------------------------------


def test_default_store_is_mlflows_own_and_the_environment_still_wins(monkeypatch):
    from mlflow.store.tracking import DEFAULT_TRACKING_URI as MLFLOW_DEFAULT

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose_train().tracking_uri is None  # the config names no store: the rule below decides
    assert DEFAULT_TRACKING_URI == MLFLOW_DEFAULT == tracking_uri(compose_train().tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/x.db")
    assert tracking_uri(compose_train().tracking_uri) == "sqlite:////elsewhere/x.db"
    # an explicit tracking_uri= (command line) wins over the environment
    assert tracking_uri(compose_train(["tracking_uri=sqlite:////mine/y.db"]).tracking_uri) == "sqlite:////mine/y.db"


def test_plain_mlflow_in_the_same_folder_sees_the_job_and_artifacts_stay_in_mlruns(python_in, project_folder):
    train(small_job(project_folder / "profiles.csv", "target=fast.gpu", "whatif=none", "log_plots=false"))
    assert not (project_folder / "mlruns" / "mlflow.db").exists()
    experiment = mlflow.get_experiment_by_name("profcast")
    assert experiment.artifact_location.startswith((project_folder / "mlruns").as_uri())
    found = python_in(
        project_folder,
        "import mlflow; runs = mlflow.search_runs(search_all_experiments=True); print(len(runs), mlflow.get_tracking_uri())",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [
        "2",
        f"sqlite:///{project_folder}/mlflow.db",
    ]  # the job and its one target, in ./mlflow.db


def test_gitignore_ignores_the_database_and_keeps_the_mlruns_folder():
    lines = (REPO / ".gitignore").read_text().splitlines()
    assert "mlflow.db" in lines and "mlruns/*" in lines and "!mlruns/.gitkeep" in lines
    assert (REPO / "mlruns" / ".gitkeep").exists()


# --- what a job stands on, in MLflow ----------------------------------------------------------------


def test_fingerprint_ignores_order_and_sees_every_value():
    table = synthetic_profiles()
    shuffled = table.sample(frac=1.0, random_state=3)[list(reversed(table.columns))]
    changed = table.copy()
    changed.loc[5, "Device_Relu"] += 1.0
    assert data_fingerprint(shuffled) == data_fingerprint(table)
    assert data_fingerprint(changed) != data_fingerprint(table)


def test_job_run_names_its_data_logs_a_dataset_input_and_a_target_summary(project_folder):
    results = train(small_job(project_folder / "profiles.csv"))
    runs = mlflow.search_runs(experiment_names=["profcast"])
    job = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    targets = runs[runs["tags.mlflow.parentRunId"] == job.run_id]
    fingerprint = data_fingerprint(pd.read_csv(project_folder / "profiles.csv"))
    assert job["tags.profcast.run_kind"] == "job" and set(targets["tags.profcast.run_kind"]) == {"target"}
    assert job["tags.profcast.data_fingerprint"] == job["params.data_fingerprint"] == fingerprint
    assert job["tags.profcast.data_kind"] == "real" and job["tags.profcast.targets"] == "fast.gpu,mid.gpu"
    for run_id in [job.run_id, *targets.run_id]:
        inputs = mlflow.get_run(run_id).inputs.dataset_inputs
        assert [item.dataset.name for item in inputs] == [f"file-{fingerprint[:8]}"]
    summary = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=job.run_id, artifact_path="targets.csv"))
    assert sorted(summary["target"]) == sorted(results)
    assert summary.set_index("target")["wape"].to_dict() == pytest.approx({t: m["wape"] for t, m in results.items()})
    artifacts = {item.path for item in mlflow.artifacts.list_artifacts(run_id=job.run_id)}
    assert {"targets.csv", "targets.md", "targets.png"} <= artifacts
    assert "fast.gpu" in job["tags.mlflow.note.content"]
    model = mlflow.pyfunc.load_model(f"runs:/{job.run_id}/profcast")
    assert (
        model.metadata.metadata["data_fingerprint"] == fingerprint
        and model.metadata.metadata["job_run_id"] == job.run_id
    )
    served = model.predict(pd.read_csv(project_folder / "profiles.csv").query("instance_name == 'slow.gpu'").head(1))
    assert (
        served["trained_on"].str.contains(fingerprint).all() and served["trained_on"].str.startswith("real data").all()
    )


def test_predict_on_the_example_profile_names_version_data_and_warns_on_generated(
    python_in, project_folder, trained_job
):
    # The shared job (a ratio job on the embedded generated data, from g3s.xlarge) in this folder's default
    # store, registered as `registry.register_single=true` registers a job trained here.
    shutil.copy(trained_job["folder"] / "mlruns" / "mlflow.db", project_folder / "mlflow.db")
    cfg = compose_train([f"anchor={TRAINED_JOB_ANCHOR}", "registry.register_single=true"])
    register_job(trained_job["model_uri"].split("/")[1], cfg.registry.alias, cfg.registry.metric)
    version = mlflow.MlflowClient().get_model_version_by_alias("profcast-g3s.xlarge", "champion")
    assert version.run_id == trained_job["model_uri"].split("/")[1]
    plot = project_folder / "ranking.png"
    shown = python_in(
        project_folder,
        "from profcast.predict import main; from profcast.cli import run_cli; "
        f"run_cli(main, ['--profile', r'{EXAMPLES / 'profiles' / 'vggsmall_cifar10_g3s.csv'}', '--anchor', 'g3s.xlarge', '--plot', r'{plot}'])",
    )
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert (
        f"{champion_uri('g3s.xlarge', cfg.registry.alias)} -> version {version.version}, job run {version.run_id}"
        in out
    )
    assert "trained on: generated data: embedded generated data (family cnn, seed 0)" in out
    assert f"warning: {provenance.GENERATED_WARNING}" in out
    assert [line.split()[1] for line in out.splitlines() if line.strip()[:1].isdigit()][-3:] != []  # a ranking follows
    assert plot.stat().st_size > 0


# --- registry: only comparable jobs compete ----------------------------------------------------------


def fake_run(run_id, start, wape, fingerprint, targets):
    tags = provenance.job_tags("d", "real", fingerprint, "a.gpu", targets)
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, start_time=start),
        data=SimpleNamespace(params={"anchor": "a.gpu"}, metrics={"mean_wape": wape}, tags=tags),
    )


def test_champion_is_chosen_among_jobs_comparable_with_the_newest():
    nine_targets = [f"t{i}" for i in range(9)]
    generated = [fake_run("gen-rf", 1, 40.0, "aaa", nine_targets), fake_run("gen-knn", 2, 30.0, "aaa", nine_targets)]
    real_one_target = fake_run("real-1", 3, 5.0, "bbb", ["t0"])
    assert (
        best_runs_by_anchor([*generated, real_one_target], "mean_wape", lower_is_better=True)["a.gpu"].info.run_id
        == "real-1"
    )
    later_generated = fake_run("gen-lr", 4, 60.0, "aaa", nine_targets)
    # the 5% of a one-target real job does not beat 9-target jobs on other data: only these compete
    assert (
        best_runs_by_anchor([*generated, real_one_target, later_generated], "mean_wape", lower_is_better=True)[
            "a.gpu"
        ].info.run_id
        == "gen-knn"
    )


def test_single_run_registers_only_on_request(project_folder):
    profiles = project_folder / "profiles.csv"
    train(small_job(profiles, "target=fast.gpu"))
    assert mlflow.search_registered_models() == []
    train(small_job(profiles, "target=fast.gpu", "registry.register_single=true"))
    newest = mlflow.search_runs(
        experiment_names=["profcast"], filter_string="tags.`profcast.run_kind` = 'job'", order_by=["start_time DESC"]
    ).iloc[0]
    version = mlflow.MlflowClient().get_model_version_by_alias("profcast-slow.gpu", "champion")
    assert (
        version.run_id == newest.run_id
        and version.tags["profcast.data_fingerprint"] == newest["tags.profcast.data_fingerprint"]
    )


# --- progress ---------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_logs_lines_with_estimates_when_not_on_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="profcast.progress"):
        assert list(track(["a", "b", "c"], "p3.2xlarge folds", stream=io.StringIO())) == ["a", "b", "c"]
    messages = [record.getMessage() for record in caplog.records]
    assert [message.split(": ")[1].split(" ")[0] for message in messages] == ["1/3", "2/3", "3/3"]
    assert all("elapsed, about" in message and message.endswith("left") for message in messages)


def test_progress_draws_a_bar_on_a_terminal_and_logs_nothing(caplog):
    terminal = Terminal()
    with caplog.at_level(logging.INFO, logger="profcast.progress"):
        assert list(track(range(4), "targets", stream=terminal)) == [0, 1, 2, 3]
    assert "targets" in terminal.getvalue() and "4/4" in terminal.getvalue()
    assert caplog.records == []


def _bar_or_lines_in_a_worker() -> bool:
    return attached_to_terminal(Terminal())


def test_progress_in_a_worker_process_logs_lines_even_on_a_terminal():
    """Jobs of a parallel sweep share the terminal: their bars would overwrite each other."""
    from concurrent.futures import ProcessPoolExecutor

    assert attached_to_terminal(Terminal())  # this process owns its terminal
    with ProcessPoolExecutor(max_workers=1) as pool:
        assert pool.submit(_bar_or_lines_in_a_worker).result() is False


# --- examples and MLproject -------------------------------------------------------------------------


def test_example_profiles_are_the_generated_anchor_run_and_the_request_is_a_full_profile():
    from profcast.datasets.embedded import load_embedded_profiles
    from profcast.ingest.profile_files import read_profile_file
    from profcast.schema import BATCH_LATENCY, op_columns

    table = load_embedded_profiles()
    row = pd.read_csv(EXAMPLES / "profiles" / "vggsmall_cifar10_g3s.csv")
    assert len(row) == 1 and row.instance_name[0] == "g3s.xlarge"
    keys = ["exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize"]
    generated = table.merge(row[keys], on=keys)
    pd.testing.assert_frame_equal(generated[row.columns].reset_index(drop=True), row, check_dtype=False, rtol=1e-9)
    exported = read_profile_file(EXAMPLES / "profiles" / "tf_stats" / "cifar10-vggsmall-sgd-64.csv")
    assert exported[BATCH_LATENCY] == pytest.approx(row[BATCH_LATENCY][0])
    request = json.loads((EXAMPLES / "request.json").read_text())["dataframe_records"]
    assert len(request) == 1 and set(request[0]) == {*op_columns(table.columns), BATCH_LATENCY}
    assert request[0] == pytest.approx({column: row[column][0] for column in request[0]})


def test_mlproject_main_entry_point_is_the_training_job():
    entry_points = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    assert entry_points["main"] == entry_points["train"]
    assert entry_points["main"]["command"].startswith("python -m profcast.train")


# --- packaging ----------------------------------------------------------------------------------------


def test_configs_live_inside_the_package_and_the_wheel_rules_ship_every_one():
    assert (CONF_DIR / "train.yaml").is_file() and CONF_DIR.parent.name == "profcast"
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "profcast.conf"
    ]
    files = [path.relative_to(REPO / "conf").as_posix() for path in (REPO / "conf").rglob("*") if path.is_file()]
    assert files and all(
        any(fnmatch(name, pattern) or fnmatch(name, pattern.removeprefix("**/")) for pattern in shipped)
        for name in files
    )
    assert {path.relative_to(CONF_DIR).as_posix() for path in CONF_DIR.rglob("*.yaml")} == set(files)


def test_an_installed_package_caches_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(tmp_path / "site-packages") == tmp_path / "xdg" / "profcast"
    assert cache_root(REPO) == REPO / ".cache" / "profcast"


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_repository(tmp_path):
    """A non-editable install: build the wheel, install it without dependencies into a venv that sees
    this interpreter's packages, and train from an empty folder."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build without isolation here: {built.stderr.splitlines()[-1]}")
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheel").glob("profcast-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(target), XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONSAFEPATH="1")
    ran = subprocess.run(
        [sys.executable, "-m", "profcast.train", "regressor=ratio", "target=p3.2xlarge", "log_model=false"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert (work / "mlflow.db").is_file() and (tmp_path / "cache" / "profcast").is_dir()
    assert (
        str(target)
        in subprocess.run(
            [sys.executable, "-c", "import profcast; print(profcast.__file__)"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    )
    # One top-level package of its own name: nothing called src (or anything else) lands in site-packages.
    assert sorted(path.name for path in target.iterdir() if not path.name.endswith(".dist-info")) == [
        "bin",
        "profcast",
    ]  # bin: the console script


# --- a reader that stops early ----------------------------------------------------------------------


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(run_cli, tmp_path):
    """`profcast ... | head -1`: the command ends with 141 and no traceback when its reader goes away."""
    import sys

    script = tmp_path / "many_lines.py"
    script.write_text(
        "import sys\nfrom profcast.cli import run_cli\n"
        "run_cli(lambda argv: print('\\n'.join(f'row {n}' for n in range(200000))))\n"
    )
    command = f"{sys.executable} {script} | head -1"
    done = run_cli(
        ["-o", "pipefail", "-c", command],
        program="bash",
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.stdout == "row 0\n"
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141
