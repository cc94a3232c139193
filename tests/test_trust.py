"""Input trust (issue 22): any op name trains, serves and plots; memory and time stay bounded whatever the
input's size; no request shape gets an HTTP 500; no answer far outside the trained sizes is given silently.

Fast tier: the key function, the readers under a small size cap, memory of a streamed trace, the guards,
a real job trained on awkward op names and served by ``mlflow models serve``. Slow tier: the CLIs.
"""

from __future__ import annotations

import json
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.ingest.profile_files import read_profile_file
from profcast.ingest.torch_trace import read_torch_trace
from profcast.jobmodel.request_limits import Deadline, RequestTimedOut, check_request_rows
from profcast.jobmodel.trained_range import check_in_range, merged_range, trained_range
from profcast.limits import MAX_INPUT_BYTES_ENV, max_input_bytes
from profcast.tracking.metric_keys import metric_keys, safe_key
from tests.bad_input_cases import error_lines, runs_in
from tests.conftest import compose_train, store_and_profiles
from tests.trust_cases import (
    AWKWARD_NAMES,
    HOSTILE_REQUESTS,
    OP,
    PROFILER_OP_NAMES,
    SERVER_LIMITS,
    gzip_bomb,
    records,
    trace_with_noise,
    weird_profiles,
)

CASE_SECONDS = 60


# ---- 1. op names -> MLflow keys ---------------------------------------------------------------------
@pytest.mark.parametrize("name", AWKWARD_NAMES, ids=range(len(AWKWARD_NAMES)))
def test_every_op_name_gets_a_key_mlflow_accepts(name):
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, _validate_metric_name

    key = safe_key(name, prefix="mape.")

    _validate_metric_name(key)  # raises on a key the store would refuse
    assert len(key) <= MAX_ENTITY_KEY_LENGTH and key == safe_key(name, prefix="mape.")  # deterministic


def test_safe_names_keep_their_key_and_renamed_ones_never_collide():
    keys = metric_keys(AWKWARD_NAMES + ["Host_x_y", "Host_x:y", "Host_x y"], prefix="mape.")

    assert keys["Device_Conv2D"] == "mape.Device_Conv2D" and keys["Host_x y"] == "mape.Host_x y"
    assert len(set(keys.values())) == len(keys)  # 'Host_x/y' and 'Host_x:y' both clean to 'Host_x_y', yet differ
    assert keys["Host_x/y"].startswith("mape.Host_x_y-h") and keys["Host_x/y"] != keys["Host_x:y"]


def test_column_error_figure_draws_any_op_name(tmp_path):
    from profcast.tracking import plots

    errors = pd.Series([5.0, 7.0, 9.0], index=["Device_a$\\frac$b", "Host_a$b$", "Host_## forward ##"])
    figure = plots.column_error_figure(errors, "title")
    figure.savefig(tmp_path / "errors.png")  # mathtext would fail on '$\\frac$' here
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    plots.close(figure)
    assert labels == ["Device_a\\$\\frac\\$b", "Host_a\\$b\\$", "Host_## forward ##"]  # worst on top: ascending order


# ---- 2. bounded memory for files ------------------------------------------------------------------
def test_a_trace_is_streamed_memory_grows_with_kept_events_not_file_size(tmp_path):
    trace = trace_with_noise(tmp_path / "big.json", kept_ops=2_000, noise_events=40_000)
    size = trace.stat().st_size

    tracemalloc.start()
    row = read_torch_trace(trace)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert size > 15e6 and peak < size / 5, (size, peak)  # json.load needs several times the file
    assert (
        row["Host_op0"] == pytest.approx(40 * 5.0)
        and sum(v for k, v in row.items() if k.startswith("Host_op")) == 2_000 * 5.0
    )


def test_gzip_bomb_stops_at_the_cap_in_one_line(tmp_path, monkeypatch):
    bomb = gzip_bomb(tmp_path / "bomb.pt.trace.json.gz", 5_000_000)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "1000000")

    with pytest.raises(ProfcastError, match="past the input size limit") as direct:
        read_torch_trace(bomb)
    with pytest.raises(ProfcastError, match="PROFCAST_MAX_INPUT_BYTES=1000000") as by_kind:
        read_profile_file(bomb)  # the kind sniffer gunzips too: capped as well

    assert all("\n" not in str(e.value) and str(bomb) in str(e.value) for e in (direct, by_kind))


def test_under_the_cap_the_same_trace_is_read(tmp_path, monkeypatch):
    trace = trace_with_noise(tmp_path / "small.json.gz", kept_ops=100, noise_events=10)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, str(10**7))

    assert read_torch_trace(trace)["Host_op0"] == pytest.approx(2 * 5.0)


def test_a_plain_table_past_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    table = tmp_path / "profiles.csv"
    weird_profiles().to_csv(table, index=False)
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "1000")

    with pytest.raises(ProfcastError, match="past the input size limit"):
        read_profile_file(table)


def test_training_tables_and_exports_are_read_through_the_cap(tmp_path, monkeypatch):
    from profcast.ingest.tables import read_profile_table
    from profcast.ingest.tfstats import read_tfstats_export
    from tests.bad_input_cases import TFSTATS_HEADER

    table = tmp_path / "profiles.csv.gz"
    weird_profiles().to_csv(table, index=False)  # ~2 kB gzipped, ~10 kB unpacked
    export = tmp_path / "mnist-lenet-sgd-32.csv"
    export.write_text(TFSTATS_HEADER + "1,Device,Conv2D,c,1,5,5,5,5\n" * 200)
    assert (
        len(read_profile_table(table)) == len(weird_profiles())
        and read_tfstats_export(export)["Device_Conv2D"] == 1000.0
    )
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, "5000")

    for read, path in ((read_profile_table, table), (read_tfstats_export, export)):
        with pytest.raises(ProfcastError, match="input size limit") as caught:
            read(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("value", ["lots", "-5", "0"])
def test_a_bad_cap_setting_is_one_line(value, monkeypatch):
    monkeypatch.setenv(MAX_INPUT_BYTES_ENV, value)

    with pytest.raises(ProfcastError, match=MAX_INPUT_BYTES_ENV):
        max_input_bytes()


@pytest.mark.parametrize(
    "content, words",
    [
        (b'{"traceEvents": [{"ph": "X", "ts": 1e999}]}', "not valid JSON"),
        (b'{"traceEvents": [{"name": "\xff"}]}', "not UTF-8"),
        (b'{"traceEvents": [' + b"[" * 100_000, "nested deeper than 64 levels"),
        (b'{"traceEvents": {"a": 1}}', 'without a "traceEvents" list'),
        (b'[{"traceEvents": []}]', 'without a "traceEvents" list'),
        (
            b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "ts": 0, "dur": 1, "args": {"correlation": [1]}}]}',
            None,
        ),
    ],
    ids=["huge_number", "non_utf8", "deep_100000", "events_not_a_list", "top_level_list", "unhashable_correlation"],
)
def test_odd_traces_are_one_line_or_read(tmp_path, content, words):
    path = tmp_path / "odd.json"
    path.write_bytes(content)
    if words is None:  # an unhashable correlation id is ignored, not a crash
        assert read_torch_trace(path)["Host_a"] == 1.0
        return
    with pytest.raises(ProfcastError, match=words) as caught:
        read_torch_trace(path)
    assert "\n" not in str(caught.value)


# ---- 2-4. request limits, deadline and trained range (no server) -------------------------------
def test_row_limit_names_itself_and_totals_allow_more(monkeypatch):
    monkeypatch.setenv("PROFCAST_MAX_REQUEST_ROWS", "10")

    with pytest.raises(ProfcastError, match=r"11 profile rows, over the limit of 10 .*output=totals"):
        check_request_rows(11, "records")
    check_request_rows(100, "totals")
    with pytest.raises(ProfcastError, match="limit of 100 for output=totals"):
        check_request_rows(101, "totals")


def test_deadline_stops_only_once_passed(monkeypatch):
    Deadline(None).check()
    Deadline(60).check()
    with pytest.raises(RequestTimedOut, match="MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"):
        Deadline(-1).check()
    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    assert Deadline.for_this_request().at is None  # src.predict has no deadline


RANGE = trained_range(pd.DataFrame({"batchsize": [32, 64, 128], "dataset": ["224imagenet", "32cifar", "cifar10"]}))


def test_trained_range_reads_batch_and_leading_input_size():
    assert RANGE == {"batchsize": [32.0, 128.0], "input_size": [32.0, 224.0], "op_total": None}
    assert merged_range([RANGE, {"batchsize": [8.0, 16.0], "input_size": None, "op_total": [10.0, 20.0]}]) == {
        "batchsize": [8.0, 128.0],
        "input_size": [32.0, 224.0],
        "op_total": [10.0, 20.0],
    }


def test_trained_range_keeps_the_span_of_the_profiles_op_totals():
    keys = pd.DataFrame({"batchsize": [32, 64], "dataset": ["cifar10", "cifar10"]})
    assert trained_range(keys, [1500.0, 400.0])["op_total"] == [400.0, 1500.0]


@pytest.mark.parametrize(
    "totals, refused",
    [
        ([199.0], "row 0: its op times add up to 199 µs per step"),  # below 400 / 2
        ([500.0, 3001.0], "row 1: its op times add up to 3001"),  # above 1500 * 2
        ([200.0, 3000.0], None),  # the factor's edges are still answered
    ],
)
def test_a_profile_far_outside_the_trained_op_totals_is_refused(totals, refused):
    from profcast.jobmodel.trained_range import check_op_total_in_range

    trained = {"batchsize": None, "input_size": None, "op_total": [400.0, 1500.0]}
    if refused is None:
        check_op_total_in_range(totals, trained)
    else:
        with pytest.raises(ProfcastError, match=refused):
            check_op_total_in_range(totals, trained)
    check_op_total_in_range([1e12], None)  # a model saved before ranges existed answers as before


@pytest.mark.parametrize(
    "request_columns, refused",
    [
        ({"batchsize": [64], "whatif_batchsize": [1_000_000_000]}, "whatif_batchsize' row 0 asks for batch size 1e+09"),
        ({"batchsize": [64, 64], "whatif_batchsize": [256, 257]}, "row 1 asks for batch size 257"),
        ({"batchsize": [15]}, "trained on batch sizes 32 to 128 and answers from 16 to 256"),
        ({"whatif_input_size": [1024]}, "input size 1024"),
        ({"dataset": ["8tiny"]}, "input sizes 32 to 224"),
        ({"batchsize": [16, 256], "whatif_batchsize": [None, 20], "dataset": ["448x", "cifar10"]}, None),
        ({"batchsize": [0], "whatif_batchsize": [-3]}, None),  # not sizes: the size checks name these
    ],
)
def test_sizes_far_outside_the_trained_range_are_refused(request_columns, refused):
    profiles = pd.DataFrame(request_columns)
    if refused is None:
        check_in_range(profiles, RANGE)
        return
    with pytest.raises(ProfcastError, match=refused.replace("+", r"\+")):
        check_in_range(profiles, RANGE)


def test_request_guard_turns_parsing_failures_into_400s(monkeypatch):
    from mlflow.exceptions import MlflowException

    from profcast.serve.request_guard import MAX_MESSAGE_CHARS, guarded

    def failing(error):
        def invocations(data, content_type, model, schema):
            raise error

        return guarded(invocations)

    monkeypatch.setenv("PROFCAST_MAX_REQUEST_BYTES", "100")
    answers = {}
    for name, call in {
        "recursion": (failing(RecursionError()), b"[]"),
        "type": (failing(TypeError("bad\nmore")), b"{}"),
        "long": (failing(MlflowException("x" * 10**6)), b"{}"),
        "big": (failing(AssertionError()), b"x" * 101),
    }.items():
        with pytest.raises(MlflowException) as raised:
            call[0](call[1], "application/json", None, None)
        answers[name] = raised.value
    assert all(e.get_http_status_code() == 400 for e in answers.values())
    assert "nested too deeply" in answers["recursion"].message and answers["type"].message.endswith("(TypeError: bad)")
    assert (
        len(answers["long"].message) < MAX_MESSAGE_CHARS + 20
        and "over the limit of 100 bytes" in answers["big"].message
    )


# ---- a real job trained on awkward op names, and its server ----------------------------------------
@pytest.fixture(scope="module")
def weird_job(tmp_path_factory, empty_tracking_database):
    """A ratio job trained on the synthetic table whose op columns carry profiler names (PROFILER_OP_NAMES)."""
    import mlflow

    from profcast.train import train

    folder, uri, table = store_and_profiles(tmp_path_factory, empty_tracking_database, "weird")
    weird_profiles().to_csv(table, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("PROFCAST_PARENT_RUN_ID", raising=False)
        train(
            compose_train(["data=file", f"data.path={table}", "anchor=slow.gpu", "regressor=ratio", "target=fast.gpu"])
        )
    mlflow.set_tracking_uri(uri)
    runs = runs_in(uri)
    model_uri = runs["tags.profcast.job_model_uri"].dropna().iloc[0]
    return {"uri": uri, "runs": runs, "model_uri": model_uri, "table": table, "folder": folder}


def test_awkward_op_names_train_to_finished_runs_with_their_names_kept(weird_job):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=weird_job["uri"])
    runs = weird_job["runs"]
    assert set(runs["status"]) == {"FINISHED"} and len(runs) == 2
    target_run = runs[runs["parent"].notna()].iloc[0]["run_id"]
    metrics = client.get_run(target_run).data.metrics
    mapping = pd.read_csv(client.download_artifacts(target_run, "metric_keys.csv"))
    errors = pd.read_csv(client.download_artifacts(target_run, "column_errors.csv"))
    renamed = dict(zip(mapping["column"], mapping["metric_key"]))
    assert set(PROFILER_OP_NAMES.values()) <= set(errors["column"])  # the original names, as written
    assert set(renamed) == set(PROFILER_OP_NAMES.values())  # each holds a character MLflow refuses
    measured = errors.set_index("column")["mape"].dropna()
    for column, value in measured.items():
        assert metrics[renamed.get(column, f"mape.{column}")] == pytest.approx(value)
    assert {"column_errors.png", "pred_vs_true.png"} <= {f.path for f in client.list_artifacts(target_run)}


def test_awkward_op_names_are_answered_by_the_loaded_model(weird_job):
    import mlflow

    model = mlflow.pyfunc.load_model(weird_job["model_uri"])
    request = weird_profiles().query("instance_name == 'slow.gpu'").head(2).drop(columns=["instance_name", "exp_name"])
    answer = model.predict(request)
    assert set(PROFILER_OP_NAMES.values()) - {"Device_a$b$/../c:d"} <= set(answer.columns)
    assert np.isfinite(answer["predicted_total"]).all() and set(answer["target_instance"]) == {"fast.gpu"}


def test_manifest_records_the_trained_sizes_as_json(weird_job):
    import mlflow

    from profcast.jobmodel.storage import MANIFEST_FILE

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=weird_job["model_uri"]))
    manifest = json.loads(next(folder.rglob(MANIFEST_FILE)).read_text())
    recorded = manifest["trained_range"]
    assert {key: recorded[key] for key in ("batchsize", "input_size")} == {
        "batchsize": [32.0, 128.0],
        "input_size": None,
    }
    # mnist/cifar10 carry no size; the op totals span the anchor's training profiles (features=all: every op)
    from profcast.schema import op_columns

    anchor = weird_profiles().query("instance_name == 'slow.gpu'")
    totals = anchor[op_columns(anchor.columns)].sum(axis=1)
    assert recorded["op_total"] == pytest.approx([totals.min(), totals.max()])


@pytest.fixture(scope="module")
def weird_server(model_server, weird_job, tmp_path_factory):
    import os
    import sys

    bin_dir = str(Path(sys.executable).parent)  # uvicorn lives beside the interpreter
    env = {
        "MLFLOW_TRACKING_URI": weird_job["uri"],
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        **SERVER_LIMITS,
    }
    with model_server(weird_job["model_uri"], tmp_path_factory.mktemp("server") / "server.log", env=env) as running:
        yield running


def post(server, content_type: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(f"{server.url}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=CASE_SECONDS) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize("case", HOSTILE_REQUESTS)
def test_hostile_request_is_a_400_in_one_line(case, weird_server):
    content_type, body, words = HOSTILE_REQUESTS[case]

    status, text = post(weird_server, content_type, body)

    assert status == 400, text[:500]
    answer = json.loads(text)
    assert words in answer["message"] and "Traceback" not in text and "stack_trace" not in answer, answer
    assert len(text) < 5000  # the body is never echoed back whole


def test_requests_within_the_limits_are_answered_with_the_profiler_names(weird_server):
    from profcast.schema import op_columns

    anchor = weird_profiles().query("instance_name == 'slow.gpu'")
    profile = {**anchor[op_columns(anchor.columns)].iloc[0].to_dict(), "batchsize": 64}  # a whole profile, as trained
    status, text = post(weird_server, "application/json", records([profile] * 40))
    assert status == 200 and len(json.loads(text)["predictions"]) == 40 and OP in json.loads(text)["predictions"][0]
    status, text = post(
        weird_server, "application/json", records([profile] * 41, output="totals")
    )  # 10x rows for totals
    assert status == 200 and len(json.loads(text)["predictions"]) == 41
    # A few op times of a whole profile read as a job far smaller than any trained on: refused, not a tiny forecast.
    status, text = post(weird_server, "application/json", records([{OP: 1.0, "Device_<lambda>": 2.0, "batchsize": 64}]))
    assert status == 400 and "outside what this model can answer" in text


def test_server_still_answers_after_the_hostile_requests(weird_server):
    with urllib.request.urlopen(f"{weird_server.url}/ping", timeout=10) as answer:
        assert answer.status == 200
    assert "Traceback" not in Path(weird_server.log_path).read_text()  # every hostile request was handled, none crashed


# ---- slow tier: the CLIs a user runs ---------------------------------------------------------------
@pytest.mark.slow
def test_convert_cli_stops_a_gzip_bomb_in_one_line(run_cli, tmp_path):
    tree = tmp_path / "traces" / "exp1" / "slow.gpu"
    tree.mkdir(parents=True)
    gzip_bomb(tree / "mnist-lenet-sgd-32.pt.trace.json.gz", 3_000_000)

    result = run_cli(
        ["-m", "profcast.convert", str(tmp_path / "traces"), "--out", str(tmp_path / "out.csv")],
        extra_env={MAX_INPUT_BYTES_ENV: "1000000"},
    )

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(error_lines(result.stderr)) == 1 and "input size limit" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "batchsize, reason",
    [
        (10**6, "trained on batch sizes 32 to 128"),  # within every size bound, far outside the trained range
        (10**9, "the largest batch size accepted"),  # past the bound the CLI and the page share
    ],
)
def test_predict_cli_refuses_an_absurd_whatif_in_one_line(run_cli, weird_job, tmp_path, batchsize, reason):
    profile = tmp_path / "profile.csv"
    weird_profiles().query("instance_name == 'slow.gpu'").head(1).to_csv(profile, index=False)

    result = run_cli(
        [
            "-m",
            "profcast.predict",
            "--profile",
            str(profile),
            "--anchor",
            "slow.gpu",
            "--model",
            weird_job["model_uri"],
            "--batchsize",
            str(batchsize),
        ],
        env_uri=weird_job["uri"],
    )

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert reason in result.stderr and len(error_lines(result.stderr)) == 1, result.stderr
