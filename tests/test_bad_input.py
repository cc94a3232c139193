"""The bad-input matrix: what a hostile-but-honest user can do, and that each ends cleanly.

Every case asserts the exit code or HTTP status, that no traceback reaches the user, and the state of
the store afterwards: bad input opens no run, a fault leaves no run RUNNING, a model file runs no code.
Classes: files, options, stores, CLI, HTTP, model files, faults (signals, bugs, concurrency).
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from profcast.cli import exit_code, print_error
from profcast.errors import ProfcastError
from profcast.hosting.model_server import free_loopback_port
from profcast.tracking.run_endings import run_job
from profcast.train import train
from tests.bad_input_cases import (
    BAD_EXPORTS,
    craft_model_folders,
    error_lines,
    runs_in,
    signal_group,
    wait_for,
    write_bad_tables,
    write_export_tree,
)
from tests.conftest import compose_train, store_and_profiles, synthetic_profiles

CASE_SECONDS = 60  # every case must be answered within this


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The good table, every bad table, and export folders with a UTF-16 and a Latin-1 export."""
    folder = tmp_path_factory.mktemp("files")
    made = write_bad_tables(folder)
    made["good"] = folder / "good.csv"
    synthetic_profiles().to_csv(made["good"], index=False)
    made["tree_bad"] = write_export_tree(folder / "tree_bad", BAD_EXPORTS)
    return made


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_tracking_database):
    """One store with one trained job (ratio, two targets) and its model folder, shared by the module."""
    import mlflow

    folder, uri, table = store_and_profiles(tmp_path_factory, empty_tracking_database, "trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
        # No figures: nothing here reads them (they cost seconds per target).
        train(
            compose_train(["data=file", f"data.path={table}", "anchor=slow.gpu", "regressor=ratio", "log_plots=false"])
        )
    mlflow.set_tracking_uri(uri)
    model_uri = runs_in(uri)["tags.profcast.job_model_uri"].dropna().iloc[0]
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return {"uri": uri, "model_uri": model_uri, "model_dir": model_dir, "table": table, "folder": folder}


def train_in_process(overrides, capsys):
    """``python -m profcast.train`` without the process: the same run_job path (exit code, stderr)."""
    started = time.monotonic()
    try:
        cfg = compose_train(overrides)
    except ProfcastError as error:  # a config error: one line and exit 2, as profcast.train.command gives it
        print_error(error)
        code = 2
    else:
        code = run_job(train, cfg)
    assert time.monotonic() - started < CASE_SECONDS
    return code, capsys.readouterr().err


def assert_refused(code, stderr, words, uri=None):
    """Exit 2, one error line holding ``words``, no traceback or numpy repr, and no run opened."""
    assert code == 2, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and words in lines[0], stderr
    assert "Traceback" not in stderr
    assert "np.int64" not in lines[0] and "np.float64" not in lines[0] and "np.True_" not in lines[0]
    if uri:
        assert len(runs_in(uri)) == 0


# ---- files: data=file data.path=<bad table> -------------------------------------------------------
FILE_CASES = {
    "pandas_index": "column 'Unnamed: 0' has no name in the header",
    "huge_op": "column 'Device_Conv2D' line 5 value 1e+300 is past the plausible limit",
    "huge_latency": "column 'batch_latency' line 5 value 5000000.0 is past the plausible limit; batch_latency is the measured seconds per training step",
    "negative_op": "column 'Device_Relu' line 5 value -1.0 is negative",
    "text_op": "column 'Device_Relu' line 5 value '12ms' is not a number",
    "inf_op": "column 'Device_Relu' line 5 value inf is infinite",
    "zero_batchsize": "column 'batchsize' line 5 has value 0; expected a positive integer",
    "all_zero_ops": "line 2 records 0 µs for every op",
    "duplicate_run": "1 duplicate run(s), e.g. line 98",
    "missing_key": "missing key column(s) model",
    "utf16": "UTF-16 text; save it as UTF-8",
    "latin1": "not UTF-8 text",
    "empty": "the file is empty",
    "binary": "cannot be read as a profile table",
    "truncated_gzip": "cannot be read as a profile table",
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_table_is_refused_in_one_line_before_any_run(case, files, tracking_uri, capsys):
    code, stderr = train_in_process(["data=file", f"data.path={files[case]}", "anchor=slow.gpu"], capsys)
    assert_refused(code, stderr, FILE_CASES[case], tracking_uri)
    lines = files[case].read_bytes().decode("utf-8", errors="replace").splitlines()
    if case in BAD_CELL_TEXT:  # the line named is the one a person opens to find the bad cell
        line = int(FILE_CASES[case].split("line ")[1].split()[0])
        assert BAD_CELL_TEXT[case] in lines[line - 1].split(",")
    if case == "duplicate_run":  # line 98 repeats line 5
        assert lines[97] == lines[4]


# What the bad cell reads as in the file, for the cases whose message names a line.
BAD_CELL_TEXT = {
    "huge_op": "1e+300",
    "huge_latency": "5000000.0",
    "negative_op": "-1.0",
    "text_op": "12ms",
    "inf_op": "inf",
    "zero_batchsize": "0",
}


@pytest.mark.parametrize("mode", ["raise", "skip"])
def test_export_folder_with_non_utf8_files(mode, files, tracking_uri, capsys):
    overrides = [
        "data=file",
        f"data.path={files['tree_bad']}",
        f"data.on_bad_file={mode}",
        "anchor=slow.gpu",
        "target=fast.gpu",
        "regressor=ratio",
        "log_model=false",
    ]
    code, stderr = train_in_process(overrides, capsys)
    if mode == "raise":
        assert_refused(code, stderr, "mnist-yyy-sgd-32.csv: not UTF-8 text", tracking_uri)
        return
    assert code == 0 and "Traceback" not in stderr
    job = runs_in(tracking_uri).query("parent.isna()").iloc[0]
    assert job["params.n_skipped_files"] == "2"  # counted on the run, not only in a log
    skipped = job["tags.profcast.skipped_files"]
    assert "mnist-yyy-sgd-32.csv: not UTF-8 text" in skipped and "mnist-zzz-sgd-32.csv: UTF-16 text" in skipped


# ---- options: every check runs before the first run opens -------------------------------------------
OPTION_CASES = {
    "empty_experiment": (["mlflow_experiment="], "mlflow_experiment is empty"),
    "k_text": (
        ["features=top", "features.k=abc"],
        "Error merging override features.k=abc. Value 'abc' of type 'str' could not be converted to Integer",
    ),
    "k_zero": (["features=top", "features.k=0"], "features.k must be a positive whole number of columns, got 0"),
    "holdout_unknown": (["split.holdout=LeNet5"], "split.holdout names unknown model(s) LeNet5;"),
    "holdout_all": (["split.holdout=[lenet,vgg,resnet,alexnet]"], "split.holdout holds out every model"),
    "group_keys": (["split.group_keys=[gpu]"], "split.group_keys must name workload keys"),
    "target_transform": (["regressor=rf", "regressor.target_transform=sqrt"], "target_transform"),
    "estimator_param": (["regressor=rf", "regressor.estimator.n_estimators=-1"], "n_estimators"),
    "transfer_param": (["regressor=transfer", "regressor.max_iter=-5"], "max_iter"),
    "pairing": (["pairing=zip"], "Could not find 'pairing/zip'"),
    "pairing_mode": (["pairing.mode=zip"], "unknown pairing 'zip'; accepted: auto, same_exp, cross, median"),
    "anchor": (["anchor=p9.huge"], "unknown anchor instance 'p9.huge'"),
    "target": (["target=nope"], "unknown target instance 'nope'"),
    "on_bad_file": (["data.on_bad_file=maybe"], "unknown data.on_bad_file 'maybe'"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_bad_option_is_refused_before_any_run(case, files, tracking_uri, capsys):
    overrides, words = OPTION_CASES[case]
    code, stderr = train_in_process(["data=file", f"data.path={files['good']}", "anchor=slow.gpu", *overrides], capsys)
    assert_refused(code, stderr, words, tracking_uri)


def test_holdout_given_as_one_name_holds_out_that_model_not_its_letters(files, tracking_uri, compose_config):
    results = train(
        compose_config(
            [
                "data=file",
                f"data.path={files['good']}",
                "anchor=slow.gpu",
                "target=fast.gpu",
                "regressor=ratio",
                "log_model=false",
                "split.holdout=lenet",
            ]
        )
    )
    table = synthetic_profiles()
    lenet_rows = len(table.query("model == 'lenet' and instance_name == 'fast.gpu'"))
    assert results["fast.gpu"]["n_test_rows"] == lenet_rows  # one fold: exactly lenet's pairs held out
    assert runs_in(tracking_uri).query("parent.notna()").iloc[0]["params.n_folds"] == "1"


# ---- stores ---------------------------------------------------------------------------------------
def schema_set_to(database: Path, revision: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("update alembic_version set version_num = ?", (revision,))


def store_case(name, tmp_path, template) -> tuple[str, str]:
    """(tracking URI, expected words) of one bad store."""
    if name == "unknown_scheme":
        return "foo://bar", "unknown scheme 'foo'"
    if name == "unreachable_server":
        return f"http://127.0.0.1:{free_loopback_port()}", "does not answer"
    if name == "unwritable_folder":
        return "sqlite:////proc/profcast/mlruns/mlflow.db", "cannot be created"
    if name == "not_a_database":
        (tmp_path / "mlflow.db").write_text("this is not sqlite\n" * 100)
        return f"sqlite:///{tmp_path / 'mlflow.db'}", "not a readable SQLite database"
    database = tmp_path / "mlflow.db"
    shutil.copy(template, database)
    if name == "newer_mlflow":
        schema_set_to(database, "ffffffffffff")
        return f"sqlite:///{database}", "written by a newer MLflow"
    from profcast.tracking.store_checks import mlflow_schema_revisions

    known, head = mlflow_schema_revisions()
    older = sorted(known - {head})[0]
    schema_set_to(database, older)
    return f"sqlite:///{database}", f"back up {database}, then run: mlflow db upgrade sqlite:///{database}"


STORE_CASES = [
    "unknown_scheme",
    "unreachable_server",
    "unwritable_folder",
    "not_a_database",
    "newer_mlflow",
    "older_mlflow",
]


@pytest.mark.parametrize("case", STORE_CASES)
def test_bad_store_is_one_line_within_seconds(case, files, tmp_path, empty_tracking_database, monkeypatch, capsys):
    uri, words = store_case(case, tmp_path, empty_tracking_database)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = (tmp_path / "mlflow.db").read_bytes() if (tmp_path / "mlflow.db").exists() else None
    started = time.monotonic()
    code, stderr = train_in_process(
        [
            "data=file",
            f"data.path={files['good']}",
            "anchor=slow.gpu",
            "target=fast.gpu",
            "regressor=ratio",
            f"tracking_uri={uri}",
        ],
        capsys,
    )
    assert time.monotonic() - started < 20, "a bad store must fail within seconds, not after retries"
    assert_refused(code, stderr, words)
    if before is not None:  # never migrated or touched without the user
        assert (tmp_path / "mlflow.db").read_bytes() == before


def test_tracking_uri_option_wins_over_the_environment_and_is_named(
    files, tmp_path, tracking_uri, caplog, compose_config
):
    chosen = f"sqlite:///{tmp_path / 'chosen' / 'mlflow.db'}"
    with caplog.at_level("INFO", logger="profcast.tracking.store"):
        train(
            compose_config(
                [
                    "data=file",
                    f"data.path={files['good']}",
                    "anchor=slow.gpu",
                    "target=fast.gpu",
                    "regressor=ratio",
                    "log_model=false",
                    f"tracking_uri={chosen}",
                ]
            )
        )
    assert f"tracking store: {chosen} (from tracking_uri=)" in caplog.text
    assert len(runs_in(chosen)) == 2 and len(runs_in(tracking_uri)) == 0  # the environment's store is untouched


# ---- the CLI as a user runs it (own process) -------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", ["utf16", "huge_op", "pandas_index"])
def test_train_cli_refuses_bad_table(run_cli, case, files, tracking_uri):
    started = time.monotonic()
    result = run_cli(
        ["-m", "profcast.train", "data=file", f"data.path={files[case]}", "anchor=slow.gpu"], env_uri=tracking_uri
    )
    assert time.monotonic() - started < CASE_SECONDS
    assert_refused(result.returncode, result.stderr, FILE_CASES[case], tracking_uri)


@pytest.mark.slow
def test_sweep_with_bad_store_or_experiment_stops_in_one_line(run_cli, files, tracking_uri, tmp_path):
    for overrides, words in [
        (["mlflow_experiment="], "mlflow_experiment is empty"),
        ([f"tracking_uri=http://127.0.0.1:{free_loopback_port()}"], "does not answer"),
    ]:
        started = time.monotonic()
        result = run_cli(
            [
                "-m",
                "profcast.train",
                "-m",
                "regressor=ratio,lr",
                "data=file",
                f"data.path={files['good']}",
                "anchor=slow.gpu",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
                *overrides,
            ],
            env_uri=tracking_uri,
        )
        assert time.monotonic() - started < CASE_SECONDS
        assert_refused(result.returncode, result.stderr, words, tracking_uri)


PREDICT_CASES = {
    "plot_suffix": (["--plot", "out.txt"], "--plot out.txt: unsupported image type '.txt'"),
    "plot_folder": (["--plot", "/nonexistent/dir/out.png"], "folder /nonexistent/dir does not exist"),
    "latin1_profile": ("latin1", "not UTF-8 text"),
    "utf16_profile": ("utf16", "UTF-16 text"),
    "huge_profile": ("huge", "is past the plausible limit"),
    "dead_store": ("dead_store", "does not answer"),  # the champion's store is a server that is down
}


@pytest.mark.slow
@pytest.mark.parametrize("case", PREDICT_CASES)
def test_predict_cli_refuses_in_one_line(run_cli, case, trained, tmp_path):
    extra, words = PREDICT_CASES[case]
    profile = tmp_path / "profile.csv"
    row = synthetic_profiles().query("instance_name == 'slow.gpu'").head(1)
    if extra == "huge":
        row = row.assign(Device_Conv2D=1e300)
    text = row.to_csv(index=False)
    encodings = {"latin1": text.replace("mnist", "mnïst").encode("latin-1"), "utf16": text.encode("utf-16")}
    encoded = encodings.get(extra, text.encode()) if isinstance(extra, str) else text.encode()
    profile.write_bytes(encoded)
    args = ["-m", "profcast.predict", "--profile", str(profile), "--anchor", "slow.gpu"]
    if extra == "dead_store":
        store = f"http://127.0.0.1:{free_loopback_port()}"
    else:
        store = trained["uri"]
        args += ["--model", trained["model_uri"]]
    started = time.monotonic()
    result = run_cli(args + (extra if isinstance(extra, list) else []), env_uri=store, cwd=tmp_path)
    assert time.monotonic() - started < CASE_SECONDS
    assert_refused(result.returncode, result.stderr, words)
    assert not (tmp_path / "out.txt").exists()


# ---- HTTP: mlflow models serve answers 400, never 500, with valid JSON and no stack trace ------------
# One anchor run of the training table as a request: every op column, as the model was trained on.
_ANCHOR_ROW = synthetic_profiles().query("instance_name == 'slow.gpu'").iloc[0]
WHOLE_PROFILE = {
    column: float(_ANCHOR_ROW[column]) for column in _ANCHOR_ROW.index if column.startswith(("Device_", "Host_"))
}

HTTP_CASES = {
    "good": (
        "application/json",
        json.dumps({"dataframe_records": [WHOLE_PROFILE]}),  # a whole profile: a few ops alone read as a tiny job
        200,
        "predictions",
    ),
    "huge_op": (
        "application/json",
        json.dumps({"dataframe_records": [{"Device_Conv2D": 1e300}]}),
        400,
        "past the plausible limit",
    ),
    "huge_latency": (
        "application/json",
        json.dumps({"dataframe_records": [{"Device_Conv2D": 1.0, "batch_latency": 1e6}]}),
        400,
        "batch_latency is the measured seconds per training step",
    ),
    "infinity_literal": (
        "application/json",
        '{"dataframe_records": [{"Device_Conv2D": Infinity}]}',
        400,
        "is infinite",
    ),
    "nan_literal": ("application/json", '{"dataframe_records": [{"Device_Conv2D": NaN}]}', 400, "is missing"),
    "broken_json": ("application/json", '{"dataframe_records": [{', 400, "valid JSON"),
    "empty_body": ("application/json", "", 400, "valid JSON"),
    "text_value": (
        "application/json",
        json.dumps({"dataframe_records": [{"Device_Conv2D": "abc"}]}),
        400,
        "Device_Conv2D",
    ),
    "few_ops": (  # a few op times of a profile: a job far smaller than any trained on
        "application/json",
        json.dumps({"dataframe_records": [{"Device_Conv2D": 100.0, "Host_IDLE": 500.0}]}),
        400,
        "outside what this model can answer",
    ),
    "unknown_target": (
        "application/json",
        json.dumps({"dataframe_records": [{"Device_Conv2D": 1.0, "target_instance": "zz"}]}),
        400,
        "asks for 'zz'",
    ),
    "no_known_column": (
        "application/json",
        json.dumps({"dataframe_records": [{"Foo": 1.0}]}),
        400,
        "no known op column",
    ),
    "negative": ("text/csv", "Device_Conv2D\n-3\n", 400, "is negative"),
    "wrong_content_type": ("text/plain", "hello", 415, "content types"),
}


@pytest.fixture(scope="module")
def server(model_server, trained, tmp_path_factory):
    import os

    bin_dir = str(Path(sys.executable).parent)  # uvicorn lives beside the interpreter
    env = {"MLFLOW_TRACKING_URI": trained["uri"], "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    with model_server(trained["model_uri"], tmp_path_factory.mktemp("server") / "server.log", env=env) as running:
        yield running


def strict_json(text: str):
    """JSON as the standard defines it: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("case", HTTP_CASES)
def test_http_request(case, server):
    content_type, body, status, words = HTTP_CASES[case]
    request = urllib.request.Request(
        f"{server.url}/invocations", data=body.encode(), headers={"Content-Type": content_type}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=CASE_SECONDS) as answer:
            got, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        got, text = error.code, error.read().decode()
    assert time.monotonic() - started < CASE_SECONDS
    assert got == status, text
    assert words in text and "Traceback" not in text and "stack_trace" not in text
    if status != 415:  # MLflow's own 415 is plain text
        strict_json(text)


# ---- model files: no code runs from a model folder -------------------------------------------------
@pytest.fixture(scope="module")
def crafted(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("crafted")
    marker = folder / "PLANTED"
    models = craft_model_folders(trained["model_dir"], folder, marker)
    return {"models": models, "marker": marker, "payload": folder / "payload"}


def test_crafted_payloads_are_real(crafted):
    """The control: loaded blindly, each payload does create the file."""
    import pickle

    import skops.io

    untrusted = next((crafted["models"]["untrusted_skops"] / "data").iterdir()) / "target0.skops"
    planted = next((crafted["models"]["pickle_as_skops"] / "data").iterdir()) / "target0.skops"
    sys.path.insert(0, str(crafted["payload"]))
    try:
        skops.io.load(untrusted, trusted=skops.io.get_untrusted_types(file=untrusted))
        assert crafted["marker"].exists()
        crafted["marker"].unlink()
        pickle.loads(planted.read_bytes())
        assert crafted["marker"].exists()
    finally:
        sys.path.remove(str(crafted["payload"]))
        sys.modules.pop("planted_payload", None)
        crafted["marker"].unlink(missing_ok=True)


@pytest.mark.parametrize("name", ["untrusted_skops", "pickle_as_skops"])
def test_pyfunc_load_model_refuses_crafted_model(name, crafted, monkeypatch):
    import mlflow

    monkeypatch.syspath_prepend(str(crafted["payload"]))
    with pytest.raises(ProfcastError, match="refusing to load types|not a readable skops model file"):
        mlflow.pyfunc.load_model(str(crafted["models"][name]))
    assert not crafted["marker"].exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["untrusted_skops", "pickle_as_skops", "cloudpickle_mlmodel"])
def test_predict_cli_refuses_crafted_model(run_cli, name, crafted, trained, tmp_path):
    profile = tmp_path / "profile.csv"
    synthetic_profiles().query("instance_name == 'slow.gpu'").head(1).to_csv(profile, index=False)
    result = run_cli(
        [
            "-m",
            "profcast.predict",
            "--profile",
            str(profile),
            "--anchor",
            "slow.gpu",
            "--model",
            str(crafted["models"][name]),
        ],
        env_uri=trained["uri"],
        extra_env={"PYTHONPATH": str(crafted["payload"])},
    )
    words = "not a profcast job model" if name == "cloudpickle_mlmodel" else "target0.skops"
    assert_refused(result.returncode, result.stderr, words)
    assert not crafted["marker"].exists()


@pytest.mark.slow
def test_models_serve_refuses_crafted_model(model_server, crafted, trained, tmp_path):
    import os

    env = {
        "PYTHONPATH": str(crafted["payload"]),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    }
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="exited"):
        with model_server(str(crafted["models"]["untrusted_skops"]), log, env=env, startup_seconds=CASE_SECONDS):
            pass
    assert "refusing to load types profcast does not trust: planted_payload.Payload" in log.read_text()
    assert not crafted["marker"].exists()


def test_predict_refuses_a_model_folder_that_does_not_check_out(trained, tmp_path):
    from profcast.serve.model_folder import checked_model_folder

    broken = tmp_path / "broken"
    shutil.copytree(trained["model_dir"], broken)
    manifest = next((broken / "data").iterdir()) / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(ProfcastError, match="not a profcast job model folder"):
        checked_model_folder(broken)
    (broken / "MLmodel").unlink()
    with pytest.raises(ProfcastError, match="not an MLflow model folder"):
        checked_model_folder(broken)


# ---- faults: signals, a job's bug, two sweeps at once ------------------------------------------------
def sweep_args(table, sweep_dir, regressors="ratio,lr", *extra):
    return [
        "-m",
        "profcast.train",
        "-m",
        f"regressor={regressors}",
        "data=file",
        f"data.path={table}",
        "anchor=slow.gpu",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_sweep_leaves_no_run_running(start_cli, number, files, tracking_uri, tmp_path):
    process = start_cli(
        sweep_args(files["good"], tmp_path / "sweep", "ratio,transfer,rf"), tracking_uri, tmp_path / "log"
    )
    try:
        wait_for(
            lambda: (runs := runs_in(tracking_uri)).empty is False and runs["parent"].notna().any(), 120, "a job run"
        )
        code = signal_group(process, number)
    finally:
        if process.poll() is None:
            process.kill()
    output = (tmp_path / "log").read_text()
    assert code == (130 if number == signal.SIGINT else 143), output
    assert "Traceback" not in output
    runs = runs_in(tracking_uri)
    assert "RUNNING" not in set(runs.status), runs[["name", "status"]]
    parent = runs[runs["parent"].isna()].iloc[0]
    assert parent.status == "KILLED"


@pytest.mark.slow
def test_job_bug_fails_its_run_and_the_sweep_but_finished_jobs_are_registered(run_cli, files, tracking_uri, tmp_path):
    result = run_cli(
        sweep_args(files["good"], tmp_path / "sweep", "ratio,exploding", "hydra.searchpath=[file://tests/conf]"),
        env_uri=tracking_uri,
        timeout=180,
    )
    assert result.returncode != 0
    runs = runs_in(tracking_uri)
    assert "RUNNING" not in set(runs.status), runs[["name", "status"]]
    parent = runs[runs["parent"].isna()].iloc[0]
    assert parent.status == "FAILED"
    jobs = runs[runs["parent"] == parent.run_id].set_index("params.regressor")
    assert jobs.loc["ratio", "status"] == "FINISHED" and jobs.loc["exploding", "status"] == "FAILED"
    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias("profcast-slow.gpu", "champion")
    assert champion.run_id == jobs.loc["ratio", "run_id"]


@pytest.mark.slow
def test_two_sweeps_started_together_on_a_new_store_log_every_job(start_cli, files, tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"  # does not exist yet: both sweeps create it
    processes = [
        start_cli(
            sweep_args(files["good"], tmp_path / f"sweep{i}", "ratio,lr", "log_model=false"), uri, tmp_path / f"log{i}"
        )
        for i in range(2)
    ]
    codes = [process.wait(timeout=300) for process in processes]
    logs = [(tmp_path / f"log{i}").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    runs = runs_in(uri)
    parents = runs[runs["parent"].isna()]
    assert len(parents) == 2 and set(parents.status) == {"FINISHED"}
    for parent_id in parents.run_id:
        assert sorted(runs[runs["parent"] == parent_id]["params.regressor"]) == ["lr", "ratio"]
    assert "RUNNING" not in set(runs.status)


def test_registry_check_refuses_a_champion_that_would_run_its_own_code(run_cli, crafted, trained, tracking_uri, capsys):
    """Whoever can move the alias must not get code run on the serving host: check, predict and serve refuse."""
    from mlflow import MlflowClient

    from profcast import registry

    client = MlflowClient(tracking_uri)
    client.create_registered_model("profcast-slow.gpu")
    good = client.create_model_version("profcast-slow.gpu", str(trained["model_dir"]))
    planted = client.create_model_version("profcast-slow.gpu", str(crafted["models"]["cloudpickle_mlmodel"]))

    client.set_registered_model_alias("profcast-slow.gpu", "champion", good.version)
    # The good champion is checked in this process (the command's main, its exit code and output); the two
    # refusals below are the point, each in a process of its own where the planted payload is importable.
    checked = exit_code(registry.main, ["--check", "--anchor", "slow.gpu"])
    out, err = capsys.readouterr()
    assert checked == 0, err
    assert out.startswith(
        f"models:/profcast-slow.gpu/{good.version}: a profcast job model"
    )  # the version, not the alias

    client.set_registered_model_alias("profcast-slow.gpu", "champion", planted.version)
    refused = run_cli(
        ["-m", "profcast.registry", "--check", "--anchor", "slow.gpu"],
        env_uri=tracking_uri,
        extra_env={"PYTHONPATH": str(crafted["payload"])},
    )
    assert_refused(
        refused.returncode, refused.stderr, f"models:/profcast-slow.gpu/{planted.version}: not a profcast job model"
    )
    profile = trained["folder"] / "one-profile.csv"
    synthetic_profiles().query("instance_name == 'slow.gpu'").head(1).to_csv(profile, index=False)
    predicted = run_cli(
        ["-m", "profcast.predict", "--profile", str(profile), "--anchor", "slow.gpu"],
        env_uri=tracking_uri,
        extra_env={"PYTHONPATH": str(crafted["payload"])},
    )  # no --model: the champion
    assert_refused(
        predicted.returncode, predicted.stderr, "models:/profcast-slow.gpu@champion: not a profcast job model"
    )
    assert not crafted["marker"].exists()
