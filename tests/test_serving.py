"""The job-level servable model: in-process predictions, the sweep's champion, and a real HTTP server."""

import json
import os
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest

from profcast.champions.callback import RegisterChampion
from profcast.champions.register import champion_uri
from profcast.jobmodel.requests import INPUT_ROW, PREDICTED_TOTAL, TARGET_INSTANCE, TRAINED_ON
from profcast.jobmodel.storage import JOB_MODEL_NAME
from profcast.tracking.sweep import PARENT_RUN_ENV, SweepParentRun
from profcast.train import train
from tests.conftest import compose_train, store_and_profiles

ANCHOR = "slow.gpu"
TARGETS = ["fast.gpu", "mid.gpu"]
OPS = ["Device_Conv2D", "Device_Relu", "Device_FusedBatchNormV3", "Host_IDLE", "Device_Unused"]
# Appended after the plain forecast's columns (docs/whatif.md): the 80% interval and epoch time.
FORECAST_EXTRAS = [
    "batch_latency_low",
    "batch_latency_high",
    "epoch_latency",
    "epoch_latency_low",
    "epoch_latency_high",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, empty_tracking_database):
    """Two jobs (ratio, transfer) on synthetic profiles, nested under a sweep parent run, then the sweep's end."""
    folder, uri, profiles = store_and_profiles(tmp_path_factory, empty_tracking_database, "serving")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = {
            name: compose_train(["data=file", f"data.path={profiles}", f"anchor={ANCHOR}", f"regressor={name}"])
            for name in ("ratio", "transfer")
        }
        from profcast.tracking.store import configure_tracking

        experiment_id = configure_tracking(cfg["ratio"].tracking_uri, cfg["ratio"].mlflow_experiment)
        parent = mlflow.MlflowClient().create_run(experiment_id, run_name="sweep test")
        patch.setenv(PARENT_RUN_ENV, parent.info.run_id)
        for config in cfg.values():
            train(config)
        RegisterChampion().on_multirun_start(cfg["ratio"])  # as Hydra calls the callbacks train.yaml lists
        SweepParentRun().on_multirun_end(cfg["ratio"])
        jobs = mlflow.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        yield {"uri": uri, "folder": folder, "jobs": jobs, "parent_run_id": parent.info.run_id, "profiles": profiles}


@pytest.fixture
def store(sweep, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep["uri"])
    mlflow.set_tracking_uri(sweep["uri"])
    return sweep


def anchor_rows(sweep, n=3) -> pd.DataFrame:
    table = pd.read_csv(sweep["profiles"])
    return table[table["instance_name"] == ANCHOR].head(n).reset_index(drop=True)


def test_sweep_end_registers_the_lowest_mean_wape_job_as_champion(store):
    jobs = store["jobs"]
    assert len(jobs) == 2
    best = jobs.sort_values("metrics.mean_wape").iloc[0]
    version = mlflow.MlflowClient().get_model_version_by_alias(f"profcast-{ANCHOR}", "champion")
    assert version.tags["profcast.job_run_id"] == best.run_id
    assert float(version.tags["profcast.mean_wape"]) == pytest.approx(best["metrics.mean_wape"])
    assert mlflow.get_run(store["parent_run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize("regressor", ["ratio", "transfer"])
def test_job_model_predicts_every_target_by_name(store, regressor):
    jobs = store["jobs"]
    job = jobs[jobs["params.regressor"] == regressor].iloc[0]
    model = mlflow.pyfunc.load_model(f"runs:/{job.run_id}/{JOB_MODEL_NAME}")
    assert model.metadata.metadata["anchor"] == ANCHOR
    assert all(not spec.required for spec in model.metadata.get_input_schema().inputs)
    rows = anchor_rows(store)
    predicted = model.predict(rows)
    assert list(predicted.columns) == [
        INPUT_ROW,
        TARGET_INSTANCE,
        *OPS,
        "batch_latency",
        PREDICTED_TOTAL,
        TRAINED_ON,
        *FORECAST_EXTRAS,
    ]
    assert list(predicted[INPUT_ROW]) == [0, 0, 1, 1, 2, 2] and list(predicted[TARGET_INSTANCE]) == TARGETS * 3
    np.testing.assert_allclose(predicted[PREDICTED_TOTAL], predicted[OPS].sum(axis=1))
    assert (predicted[OPS] >= 0).all().all() and (predicted["batch_latency"] > 0).all()
    # an op left out counts as 0, an unknown column is ignored, target_instance picks one target
    only_some_ops = rows[["Device_Conv2D", "Host_IDLE"]].assign(Device_Brand_New=5.0, target_instance="mid.gpu")
    zeros_written = rows[OPS].assign(Device_Relu=0.0, Device_FusedBatchNormV3=0.0, Device_Unused=0.0)
    pd.testing.assert_frame_equal(
        model.predict(only_some_ops).reset_index(drop=True),
        predicted_for(model.predict(zeros_written), "mid.gpu"),
    )


def predicted_for(predicted: pd.DataFrame, target: str) -> pd.DataFrame:
    return predicted[predicted[TARGET_INSTANCE] == target].reset_index(drop=True)


def test_job_model_is_not_logged_without_log_model(store, tracking_uri):
    train(
        compose_train(
            [
                "data=file",
                f"data.path={store['profiles']}",
                f"anchor={ANCHOR}",
                "regressor=ratio",
                "target=fast.gpu",
                "log_model=false",
            ]
        )
    )
    runs = mlflow.search_runs(experiment_names=["profcast"])
    assert "tags.profcast.job_model" not in runs or runs["tags.profcast.job_model"].isna().all()


# --- a real `mlflow models serve` on a loopback port ---------------------------------------------


@pytest.fixture(scope="module")
def server(model_server, sweep):
    """The champion served from the registry, the way the docs tell users to serve it."""
    with model_server(
        champion_uri(ANCHOR, compose_train().registry.alias),
        sweep["folder"] / "server.log",
        env={"MLFLOW_TRACKING_URI": sweep["uri"]},
    ) as running:
        yield running
    with pytest.raises(ProcessLookupError):  # the server and its worker are gone, not left behind
        os.killpg(running.process.pid, 0)


def post(server, body) -> tuple[int, dict | str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}/invocations", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.mark.slow
def test_server_answers_dataframe_split_and_records_with_named_columns(store, server):
    rows = anchor_rows(store, n=2)[OPS + ["batch_latency", "batchsize", "dataset", "model"]]
    split = json.loads(rows.to_json(orient="split", index=False))
    status, answer = post(server, {"dataframe_split": split})
    assert status == 200, answer
    served = pd.DataFrame(answer["predictions"])
    assert list(served.columns) == [
        INPUT_ROW,
        TARGET_INSTANCE,
        *OPS,
        "batch_latency",
        PREDICTED_TOTAL,
        TRAINED_ON,
        *FORECAST_EXTRAS,
    ]
    assert len(served) == 2 * len(TARGETS)
    status, answer = post(server, {"dataframe_records": rows.to_dict(orient="records")})
    assert status == 200, answer
    pd.testing.assert_frame_equal(pd.DataFrame(answer["predictions"]), served)
    champion = mlflow.pyfunc.load_model(champion_uri(ANCHOR, compose_train().registry.alias))
    np.testing.assert_allclose(served[PREDICTED_TOTAL], champion.predict(rows)[PREDICTED_TOTAL])


@pytest.mark.slow
def test_server_accepts_partial_profiles_and_logs_ignored_columns(server):
    status, answer = post(
        server,
        {
            "dataframe_records": [
                # two known ops of a profile (adding up inside the trained op totals) and one never seen
                {"Device_Conv2D": 3000.0, "Host_IDLE": 900, "Device_Warp_Drive": 3.0, "target_instance": "fast.gpu"}
            ]
        },
    )
    assert status == 200, answer
    assert [row[TARGET_INSTANCE] for row in answer["predictions"]] == ["fast.gpu"]
    assert "Device_Warp_Drive" in server.log_path.read_text()  # MLflow's warning names what it ignored


BAD_REQUESTS = [
    ("no known op column", {"dataframe_records": [{"Device_Warp_Drive": 1.0}]}, "no known op column"),
    ("empty records", {"dataframe_records": []}, "no known op column"),
    ("text value", {"dataframe_records": [{"Device_Conv2D": "12ms"}]}, "Device_Conv2D"),
    (
        "text 'NaN'",
        {"dataframe_records": [{"Device_Conv2D": "NaN"}]},
        "column 'Device_Conv2D' row 0 value nan is missing",
    ),
    (
        "null value",
        {"dataframe_split": {"columns": ["Device_Conv2D"], "data": [[None]]}},
        "column 'Device_Conv2D' row 0 value nan is missing",
    ),
    (
        "record missing an op",
        {"dataframe_records": [{"Device_Conv2D": 1.0}, {"Host_IDLE": 2.0}]},
        "every record must list the same op columns",
    ),
    (
        "negative",
        {"dataframe_records": [{"Device_Conv2D": 5.0, "Host_IDLE": -1}]},
        "column 'Host_IDLE' row 0 value -1.0 is negative",
    ),
    (
        "negative latency",
        {"dataframe_records": [{"Device_Conv2D": 5.0, "batch_latency": -0.1}]},
        "column 'batch_latency' row 0 value -0.1 is negative",
    ),
    (
        "unknown target",
        {"dataframe_records": [{"Device_Conv2D": 5.0, "target_instance": "p9.huge"}]},
        "'p9.huge', which this model does not predict; known target instances: fast.gpu, mid.gpu",
    ),
    (
        "profile from another instance",
        {"dataframe_records": [{"Device_Conv2D": 5.0, "instance_name": "fast.gpu"}]},
        "taken on 'slow.gpu'",
    ),
    ("batchsize text", {"dataframe_records": [{"Device_Conv2D": 5.0, "batchsize": "big"}]}, "batchsize"),
    ("list value", {"dataframe_records": [{"Device_Conv2D": [1, 2]}]}, "Device_Conv2D"),
    (
        "split row too short",
        {"dataframe_split": {"columns": ["Device_Conv2D", "Host_IDLE"], "data": [[1.0]]}},
        "dataframe_split",
    ),
    ("split not an object", {"dataframe_split": [1, 2]}, "must be a dictionary"),
    ("records not a list", {"dataframe_records": {"Device_Conv2D": 1.0}}, "must be a list of records"),
    ("no input field", {"rows": []}, "dataframe_records"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, body, words", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_400_naming_the_problem(server, name, body, words):
    status, answer = post(server, body)
    assert status == 400, (name, status, answer)
    assert words in answer["message"], (name, answer["message"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "raw",
    [
        b"NaN",
        b"not json",
        b'{"dataframe_records": [{"Device_Conv2D": NaN}]}',
        b'{"dataframe_records": [{"Device_Conv2D": Infinity}]}',
        b'{"dataframe_records": [{"Device_Conv2D": 1e999}]}',
        b"\xff\xfe",
        b"[]",
        b"{}",
    ],
)
def test_malformed_bodies_never_make_a_500(server, raw):
    status, answer = post(server, raw)
    assert status == 400, (raw, status, answer)
    if b"Device_Conv2D" in raw:
        assert "Device_Conv2D" in answer["message"] and (
            "missing" in answer["message"] or "infinite" in answer["message"]
        )


@pytest.mark.slow
def test_server_answers_in_the_shape_the_output_param_asks_for(store, server):
    rows = json.loads(anchor_rows(store, n=2)[OPS + ["batch_latency"]].to_json(orient="split", index=False))
    _, records = post(server, {"dataframe_split": rows})
    served = pd.DataFrame(records["predictions"])
    status, columns = post(server, {"dataframe_split": rows, "params": {"output": "columns"}})
    assert status == 200, columns
    pd.testing.assert_frame_equal(pd.DataFrame(columns["predictions"]), served, check_exact=True)
    status, totals = post(server, {"dataframe_split": rows, "params": {"output": "totals"}})
    assert status == 200, totals
    totals = pd.DataFrame(totals["predictions"])
    assert not set(OPS) & set(totals.columns)
    pd.testing.assert_frame_equal(totals, served[totals.columns], check_exact=True)
    status, answer = post(server, {"dataframe_split": rows, "params": {"output": "csv"}})
    assert status == 400 and "accepted: records, columns, totals" in answer["message"], answer
