"""Forecasts users can act on: the job model's 80% interval, batch-size what-if and epoch time, served and in the CLI."""

import json
import math
import re
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from profcast.cli import exit_code
from profcast.datasets.sources import EmbeddedData
from profcast.jobmodel.model import JobModel
from profcast.jobmodel.requests import (
    EPOCH_LATENCY,
    INPUT_ROW,
    SAMPLES_PER_EPOCH,
    TARGET_INSTANCE,
    WHATIF_BATCHSIZE,
    WHATIF_INPUT_SIZE,
)
from profcast.predict import main
from profcast.schema import BATCH_LATENCY
from profcast.serve.loader import ServedJobModel
from tests.conftest import TRAINED_JOB_ANCHOR, TRAINED_JOB_TARGETS, store_with_trained_job

ANCHOR = TRAINED_JOB_ANCHOR
TARGETS = list(TRAINED_JOB_TARGETS)
LOW, HIGH = f"{BATCH_LATENCY}_low", f"{BATCH_LATENCY}_high"


@pytest.fixture(scope="module")
def job(tmp_path_factory, trained_job):
    """The shared ratio job on the embedded data (five batch sizes per job), its model and anchor rows."""
    trained = store_with_trained_job(trained_job, tmp_path_factory.mktemp("whatif"))
    folder = trained["folder"]
    uri, model_uri, metrics = trained["uri"], trained["model_uri"], trained["metrics"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        pyfunc = mlflow.pyfunc.load_model(model_uri)
    profiles = EmbeddedData().load()
    anchor_rows = profiles[profiles["instance_name"] == ANCHOR].reset_index(drop=True)
    yield {
        "uri": uri,
        "model_uri": model_uri,
        "metrics": metrics,
        "pyfunc": pyfunc,
        "profiles": profiles,
        "anchor_rows": anchor_rows,
        "folder": folder,
    }


def job_model(job) -> JobModel:
    served = job["pyfunc"]._model_impl  # MLflow's wrapper around profcast.serve.loader's ServedJobModel
    return served.job_model


def request(job, rows=(0, 7, 20), **columns) -> pd.DataFrame:
    """Anchor rows as a request (run keys kept: batchsize, dataset, epoch_latency are read), plus ``columns``."""
    frame = (
        job["anchor_rows"]
        .iloc[list(rows)]
        .drop(columns=["instance_name", "exp_name", "model", "optimizer"])
        .reset_index(drop=True)
    )
    return frame.assign(**columns)


def test_training_logs_held_out_interval_coverage(job):
    for target in TARGETS:
        metrics = job["metrics"][target]
        # Cross-conformal on three held-out models: near the nominal 80%, never the in-sample 100%.
        assert 50 <= metrics["interval_coverage"] <= 100 and metrics["interval_width"] > 0
        assert 0 <= metrics["whatif_interval_coverage"] <= 100 and np.isfinite(metrics["whatif_batch_latency_mape"])


def test_answers_keep_their_values_and_gain_an_interval_around_the_forecast(job):
    model = job_model(job)
    plain = JobModel(
        model.anchor, model.models, model.op_columns, model.output_op_columns, model.predicts_latency, model.trained_on
    )
    asked = request(job)
    before, after = plain.predict(asked), model.predict(asked)
    pd.testing.assert_frame_equal(after[before.columns], before, check_exact=True)  # bit for bit
    assert set(after.columns) - set(before.columns) == {
        LOW,
        HIGH,
        EPOCH_LATENCY,
        f"{EPOCH_LATENCY}_low",
        f"{EPOCH_LATENCY}_high",
    }
    latency = after[BATCH_LATENCY].astype(float)
    assert (after[LOW] < latency).all() and (latency < after[HIGH]).all()
    # The interval scales with the forecast: one relative width per target.
    widths = (after[HIGH] / latency).groupby(after[TARGET_INSTANCE]).agg(["min", "max"])
    assert np.allclose(widths["min"], widths["max"])


def test_epoch_time_uses_the_anchor_steps_or_the_given_samples(job):
    model = job_model(job)
    asked = request(job)
    answer = model.predict(asked)
    steps = (asked["epoch_latency"] / asked[BATCH_LATENCY]).to_numpy()[answer[INPUT_ROW]]
    assert np.allclose(answer[EPOCH_LATENCY].astype(float), steps * answer[BATCH_LATENCY].astype(float))
    given = model.predict(asked.assign(**{SAMPLES_PER_EPOCH: 1000}))
    steps = np.ceil(1000 / asked["batchsize"].to_numpy()[given[INPUT_ROW]])
    assert np.allclose(given[EPOCH_LATENCY].astype(float), steps * given[BATCH_LATENCY].astype(float))
    unknown = model.predict(asked.drop(columns=["epoch_latency"]))
    assert unknown[EPOCH_LATENCY].isna().all()  # never invented
    no_batch = model.predict(asked.drop(columns=["batchsize"]))  # the measured steps need no batch size
    pd.testing.assert_series_equal(no_batch[EPOCH_LATENCY], answer[EPOCH_LATENCY])


def test_only_a_leading_number_of_a_dataset_name_is_an_input_size():
    from profcast.regressors.whatif import input_size

    assert input_size("64dataset") == 64
    assert all(np.isnan(input_size(name)) for name in ("cifar10", "cifar100", "mnist", ""))


def test_targets_that_bound_another_quantity_answer_null_bounds(tmp_path):
    from profcast.jobmodel.forecast_extras import QUANTITY_KEY, save_extras
    from profcast.regressors.intervals import ConformalInterval

    interval = ConformalInterval().fit(np.linspace(-0.2, 0.2, 50))
    extras = {
        "a": {"quantity": BATCH_LATENCY, "interval": interval, "whatif": None, "whatif_interval": None, "moves": {}},
        "b": {
            "quantity": "predicted_total",
            "interval": interval,
            "whatif": None,
            "whatif_interval": None,
            "moves": {},
        },
    }
    import skops.io

    entries = save_extras(tmp_path, extras, {"a": "target0.skops", "b": "target1.skops"})
    assert entries[QUANTITY_KEY] == BATCH_LATENCY
    saved = skops.io.load(
        tmp_path / "target1.extras.skops", trusted=skops.io.get_untrusted_types(file=tmp_path / "target1.extras.skops")
    )
    assert saved["interval"] is None and extras["b"]["interval"] is interval  # the caller's extras are left alone


def test_whatif_at_the_profiled_size_is_the_plain_forecast(job):
    model = job_model(job)
    asked = request(job)
    pd.testing.assert_frame_equal(
        model.predict(asked.assign(**{WHATIF_BATCHSIZE: asked["batchsize"]})), model.predict(asked), check_exact=True
    )


def test_whatif_at_twice_the_batch_moves_step_time_the_measured_way(job):
    model = job_model(job)
    rows = job["anchor_rows"].index[job["anchor_rows"]["batchsize"] == 64][:6]
    asked = request(job, rows)
    plain, doubled = model.predict(asked), model.predict(asked.assign(**{WHATIF_BATCHSIZE: 128}))
    keys = ["dataset", "model", "optimizer", "exp_name"]
    wanted = job["anchor_rows"].iloc[rows][keys].reset_index(drop=True).iloc[doubled[INPUT_ROW]].reset_index(drop=True)
    wanted = wanted.assign(instance_name=doubled[TARGET_INSTANCE].to_numpy())
    measured = {
        batch: wanted.assign(batchsize=batch).merge(job["profiles"], how="left")[BATCH_LATENCY].to_numpy()
        for batch in (64, 128)
    }
    growth = measured[128] / measured[64]
    forecast_growth = doubled[BATCH_LATENCY].astype(float).to_numpy() / plain[BATCH_LATENCY].astype(float).to_numpy()
    # Where the target clearly slows at batch 128 the what-if does too (launch-bound small nets barely move).
    clear = growth > 1.1
    assert clear.sum() >= 6 and (forecast_growth[clear] > 1.1).all()
    # And the what-if is nearer the measured batch-128 step time than the batch-64 forecast.
    error = lambda forecast: np.abs(np.log(forecast.astype(float).to_numpy() / measured[128]))  # noqa: E731
    assert np.median(error(doubled[BATCH_LATENCY])) < np.median(error(plain[BATCH_LATENCY]))
    assert (doubled["predicted_total"][clear] > plain["predicted_total"][clear]).all()
    # Fewer, longer steps: the epoch at batch 128 takes half the anchor's steps.
    steps = (asked["epoch_latency"] / asked[BATCH_LATENCY] / 2).to_numpy()[doubled[INPUT_ROW]]
    assert np.allclose(doubled[EPOCH_LATENCY].astype(float), steps * doubled[BATCH_LATENCY].astype(float))
    assert (doubled[LOW] < doubled[BATCH_LATENCY].astype(float)).all() and (
        doubled[BATCH_LATENCY].astype(float) < doubled[HIGH]
    ).all()


@pytest.mark.parametrize(
    "columns, words",
    [
        ({WHATIF_BATCHSIZE: 0}, "'whatif_batchsize' row 0 value 0 is not a positive integer"),
        ({WHATIF_BATCHSIZE: -32}, "value -32 is not a positive integer"),
        ({WHATIF_BATCHSIZE: 48.5}, "value 48.5 is not a positive integer"),
        ({WHATIF_BATCHSIZE: "lots"}, "value 'lots' is not a positive integer"),
        ({WHATIF_BATCHSIZE: math.inf}, "is not a positive integer"),
        ({SAMPLES_PER_EPOCH: -1}, "'samples_per_epoch' row 0 value -1 is not a positive number"),
        ({WHATIF_INPUT_SIZE: 64}, "asks for a what-if at another input size, but this model was trained without one"),
    ],
)
def test_bad_sizes_are_one_line_400s(job, columns, words):
    with pytest.raises(MlflowException) as raised:
        ServedJobModel(job_model(job)).predict(request(job, rows=[0]).assign(**columns))
    assert (
        raised.value.error_code == "INVALID_PARAMETER_VALUE"
        and words in raised.value.message
        and "\n" not in raised.value.message
    )


def test_whatif_needs_the_profiled_batch_size_and_a_model_with_a_whatif(job):
    model = job_model(job)
    with pytest.raises(MlflowException, match="needs the profiled batch size"):
        ServedJobModel(model).predict(
            request(job, rows=[0]).drop(columns=["batchsize"]).assign(**{WHATIF_BATCHSIZE: 128})
        )
    without = JobModel(
        model.anchor,
        model.models,
        model.op_columns,
        model.output_op_columns,
        model.predicts_latency,
        None,
        {target: {**extras, "whatif": None} for target, extras in model.extras.items()},
        model.interval_quantity,
    )
    with pytest.raises(MlflowException, match="trained without one"):
        ServedJobModel(without).predict(request(job, rows=[0]).assign(**{WHATIF_BATCHSIZE: 128}))


def test_server_answers_a_whatif_and_refuses_a_bad_one(model_server, job):
    body = {
        "dataframe_records": json.loads(
            request(job, rows=[0]).assign(**{WHATIF_BATCHSIZE: 128}).to_json(orient="records")
        )
    }
    with model_server(
        job["model_uri"], job["folder"] / "server.log", env={"MLFLOW_TRACKING_URI": job["uri"]}
    ) as server:
        answers = []
        for records in (body, {"dataframe_records": [{**body["dataframe_records"][0], WHATIF_BATCHSIZE: -4}]}):
            call = urllib.request.Request(
                f"{server.url}/invocations", json.dumps(records).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(call, timeout=60) as response:
                    answers.append((response.status, json.loads(response.read())))
            except urllib.error.HTTPError as error:
                answers.append((error.code, json.loads(error.read())))
    (status, good), (bad_status, bad) = answers
    assert status == 200
    expected = job_model(job).predict(request(job, rows=[0]).assign(**{WHATIF_BATCHSIZE: 128}))
    served = pd.DataFrame(good["predictions"])
    assert np.allclose(served[BATCH_LATENCY], expected[BATCH_LATENCY].astype(float)) and np.allclose(
        served[HIGH], expected[HIGH]
    )
    assert bad_status == 400 and "'whatif_batchsize' row 0 value -4" in bad["message"]


def ranked(stdout: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^\s+\d+\s+(\S+)\s.*?(\d+\.\d+) ms", stdout, flags=re.MULTILINE)
    }


def test_cli_batchsize_flag_forecasts_at_that_size_with_intervals(job, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", job["uri"])
    profile = tmp_path / "run.csv"
    job["anchor_rows"][job["anchor_rows"]["batchsize"] == 64].head(1).to_csv(profile, index=False)
    common = ["--profile", str(profile), "--anchor", ANCHOR, "--model", job["model_uri"]]
    assert exit_code(main, common) == 0
    plain = capsys.readouterr().out
    plot = tmp_path / "whatif.png"
    assert exit_code(main, [*common, "--batchsize", "128", "--plot", str(plot)]) == 0
    doubled = capsys.readouterr().out
    assert "what-if: forecast at batch size 128 from the profile's 64" in doubled and "80% interval" in doubled
    assert "50,000 samples / batch 128 = 391 steps" in doubled and plot.stat().st_size > 1000
    before, after = ranked(plain), ranked(doubled)
    assert set(after) == set(TARGETS) and all(after[target] > before[target] for target in TARGETS)
    assert re.search(r"\d+\.\d\d-\d+\.\d\d", doubled)  # the interval cell
    assert exit_code(main, [*common, "--input-size", "64"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("profcast: error:") and "\n" not in error and "input size" in error
