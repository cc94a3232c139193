"""A GPU nobody measured as a training target (``target_gpu=FILE``): trained by ``src.train``, answered by
the served model and ranked by ``src.predict``, marked unmeasured everywhere, checked against the real
measurements of the GPU the test leaves out of the data (L4).

The bound on the served forecasts is loose on purpose: the per-call model alone is 15% off on L4 in
the leave-one-GPU-out benchmark (docs/new-gpu.md; L4 is its worst measured target, forecast too
fast), and the regressor that carries its forecasts into the served model adds its own error (it sees
op sums, not shapes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from profcast.errors import ProfcastError
from profcast.pipeline.unmeasured_target import widened_interval
from profcast.schema import BATCH_LATENCY
from tests.conftest import REPO, compose_train

NEUSIGHT = REPO / ".." / "shared" / "data" / "neusight"
L4_CONFIG = NEUSIGHT / "scripts" / "asplos" / "data" / "device_configs" / "NVIDIA_L4.json"
V100_LABELS = NEUSIGHT / "scripts" / "asplos" / "label" / "Tesla_V100-PCIE-32GB"
ANCHOR, TARGET = "v100-pcie-32gb", "l4"
MAX_ITER = 30  # boosting rounds of the per-call model: enough to learn, cheap on 2 cores
needs_shared = pytest.mark.skipif(not L4_CONFIG.is_file(), reason="NeuSight's shared copy (../shared) not found")


def test_widened_interval_takes_quantiles_of_every_sum_of_the_two_errors():
    # Sums: 0+0, 0-0.1, 0.1+0, 0.1-0.1 -> [0, -0.1, 0.1, 0]; numpy's 10% / 90% quantiles of those.
    interval = widened_interval([0.0, 0.1], [0.0, -0.1, np.nan])

    assert interval.quantiles_ == pytest.approx((-0.07, 0.07))
    low, high = interval.bounds([2.0])
    assert low[0] == pytest.approx(2 * np.exp(-0.07)) and high[0] == pytest.approx(2 * np.exp(0.07))
    assert widened_interval([0.1], [np.nan]) is None  # no regressor residual: no interval, never a made-up one


def l4_figures_file(folder):
    """L4's figures in profcast's own spelling, as a user writes them from the spec sheet (one file)."""
    from profcast.ingest.device_figures import read_device_figures

    figures = read_device_figures(L4_CONFIG).as_dict()
    keys = ("name", "fp32_tflops", "memory_bandwidth_gbs", "memory_gb", "l2_mb", "sm_count", "clock_mhz")
    path = folder / "l4.yaml"
    path.write_text(yaml.safe_dump({key: figures[key] for key in keys}), encoding="utf-8")
    return path


def overrides(figures_file, **more) -> list[str]:
    settings = {
        "data": "neusight",
        "data.path": str(NEUSIGHT),
        "anchor": ANCHOR,
        "target": TARGET,
        "target_gpu": str(figures_file),
        "regressor": "transfer",
        "per_call.max_iter": MAX_ITER,
        "log_plots": "false",
        "n_jobs": 1,
        **more,
    }
    return [f"{key}={value}" for key, value in settings.items() if value is not None]  # None: key left out


@pytest.fixture(scope="module")
def l4_measured():
    """L4's real step times (s) by workload, read from the data the job leaves them out of."""
    from profcast.ingest.neusight_data import load_neusight_profiles

    table = load_neusight_profiles(path=NEUSIGHT)
    return table[table["instance_name"] == TARGET].set_index(["model", "optimizer", "batchsize", "dataset"])[
        BATCH_LATENCY
    ]


@pytest.fixture(scope="module")
def l4_job(tmp_path_factory, empty_tracking_database):
    """``python -m profcast.train ... target=l4 target_gpu=l4.yaml``: L4's measurements left out, its figures in."""
    from tests.conftest import train_into_fresh_store

    folder = tmp_path_factory.mktemp("unmeasured_l4")
    figures = l4_figures_file(folder)
    job = train_into_fresh_store(folder, empty_tracking_database, overrides(figures))
    return {**job, "figures": figures, "folder": folder}


@pytest.fixture(scope="module")
def served_answer(l4_job, l4_measured):
    """The served model's answer for every V100 run of the data, beside L4's measured step time."""
    import mlflow

    from profcast.ingest.neusight_data import load_neusight_profiles
    from profcast.serve.model_folder import load_checked_model

    mlflow.set_tracking_uri(l4_job["uri"])
    # profcast's own loader: MLflow's would import the model's copy of profcast in place of this one.
    model = load_checked_model(mlflow.artifacts.download_artifacts(l4_job["model_uri"]))
    table = load_neusight_profiles(path=NEUSIGHT)
    anchor_runs = table[table["instance_name"] == ANCHOR].reset_index(drop=True)
    answer = model.predict(anchor_runs.drop(columns=["instance_name"]))
    workload = ["model", "optimizer", "batchsize", "dataset"]
    answer[workload] = anchor_runs.loc[answer["input_row"], workload].to_numpy()
    answer["measured"] = [l4_measured.get(tuple(key), np.nan) for key in answer[workload].itertuples(index=False)]
    return answer


@pytest.mark.slow
@needs_shared
def test_the_forecast_rows_stand_in_for_the_left_out_gpu(l4_measured):
    from profcast.ingest.neusight_calls import read_call_folder
    from profcast.ingest.neusight_data import load_neusight_profiles
    from profcast.pipeline.unmeasured_target import target_rows
    from profcast.regressors.step_gap import RUN_KEYS, median_gap_per_call_us

    table = load_neusight_profiles(path=NEUSIGHT)
    rows, target = target_rows(table, ANCHOR, L4_CONFIG, NEUSIGHT, max_iter=MAX_ITER)

    forecast = rows[rows["instance_name"] == TARGET]
    anchor_runs = table[table["instance_name"] == ANCHOR]
    assert target.left_out and TARGET not in target.measured_gpus and len(target.measured_gpus) == 10
    assert len(forecast) == len(anchor_runs)  # one forecast per anchor run: L4's own 9 rows are gone
    assert len(rows) == len(table)  # 9 measured L4 rows out, 9 forecast rows in, every other row kept
    measured = forecast.set_index(["model", "optimizer", "batchsize", "dataset"])[BATCH_LATENCY]
    assert not np.isclose(measured.to_numpy(), l4_measured.reindex(measured.index).to_numpy()).any()
    # The step time is the sum of the forecast calls, as is the op vector, plus the step-level gap: the median
    # (step - calls summed) per call of the 10 other GPUs' runs, times the anchor run's calls.
    calls, steps = read_call_folder(NEUSIGHT)
    gap = median_gap_per_call_us(calls[calls["gpu"] != TARGET], steps[steps["gpu"] != TARGET])
    per_run = calls[calls["gpu"] == ANCHOR].groupby(RUN_KEYS)["repeat"].sum()
    n_calls = [per_run[(m, o, int(d.removesuffix("tokens")), b)] for m, o, d, b in
               forecast[["model", "optimizer", "dataset", "batchsize"]].itertuples(index=False)]  # fmt: skip
    ops = forecast[[column for column in forecast.columns if column.startswith("Device_")]].sum(axis=1)
    assert gap != 0.0
    assert np.allclose(
        (ops.to_numpy() + gap * np.asarray(n_calls)) / 1e6, forecast[BATCH_LATENCY].to_numpy(), rtol=1e-9
    )
    # A leave-one-GPU-out error for every measured run of the 10 other GPUs, each from a model without its GPU.
    assert len(target.logo_log_errors) == (steps["gpu"] != TARGET).sum()
    assert 1 < target.logo_mape < 40


@pytest.mark.slow
@needs_shared
def test_the_served_model_marks_the_unmeasured_gpu_and_forecasts_near_its_measurements(served_answer):
    answer = served_answer

    assert list(answer["target_instance"].unique()) == [TARGET]
    assert (~answer["target_measured"]).all()
    assert answer["trained_on"].str.startswith("unmeasured GPU: forecast from its figures (l4.yaml)").all()
    latency = answer[BATCH_LATENCY].to_numpy(float)
    assert np.isfinite(latency).all() and (latency > 0).all()
    assert (answer["batch_latency_low"] < latency).all() and (latency < answer["batch_latency_high"]).all()
    error = np.abs(latency / answer["measured"].to_numpy(float) - 1)
    assert answer["measured"].notna().all()  # L4 measured every workload V100 did
    assert error.mean() < 0.30 and error.max() < 0.40, error


@pytest.mark.slow
@needs_shared
def test_the_runs_report_the_leave_one_gpu_out_error_not_the_copy_error(l4_job):
    import mlflow

    runs = mlflow.MlflowClient(tracking_uri=l4_job["uri"]).search_runs([l4_job["experiment_id"]])
    (target_run,) = [run for run in runs if "n_pairs" in run.data.params]  # the job run has no pairs of its own
    (job_run,) = [run for run in runs if run.data.tags.get("profcast.job_model")]

    assert target_run.data.tags["profcast.target_measured"] == "false"
    assert target_run.data.params["target_measured"] == "False"
    assert job_run.data.tags["profcast.unmeasured_targets"] == TARGET
    metrics = target_run.data.metrics
    assert "wape" not in metrics and not any(name.startswith("mape.") for name in metrics)
    assert "vs_per_call_wape" in metrics  # how well the regressor copies the per-call model, named so
    assert 0 < metrics["batch_latency_mape"] < 40 and metrics["logo_runs"] >= 50
    assert l4_job["metrics"][TARGET]["batch_latency_mape"] == metrics["batch_latency_mape"]


@pytest.mark.slow
@needs_shared
def test_src_predict_ranks_the_unmeasured_gpu_and_says_so(l4_job, served_answer, monkeypatch, capsys):
    from profcast.predict import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", l4_job["uri"])
    profile = V100_LABELS / "bert_large-train-512-8.csv"

    assert main(["--profile", str(profile), "--anchor", ANCHOR, "--model", l4_job["model_uri"]]) == 0

    printed = capsys.readouterr().out
    (l4_line,) = [line for line in printed.splitlines() if line.split()[1:2] == [TARGET]]
    assert l4_line.rstrip().endswith("(unmeasured GPU: from its figures)")
    assert "note: unmeasured GPU(s) l4: no measurement of them" in printed
    served = served_answer[
        (served_answer["model"] == "bert_large")
        & (served_answer["batchsize"] == 8)
        & (served_answer["optimizer"] == "train")
    ]
    shown_ms = float(l4_line.split("ms")[0].split()[-1])
    assert shown_ms == pytest.approx(served[BATCH_LATENCY].iloc[0] * 1000, abs=0.01)


def bad_figures(folder, **changes):
    content = {
        "name": "h200-141gb",
        "fp32_tflops": 67,
        "memory_bandwidth_gbs": 4800,
        "memory_gb": 141,
        "l2_mb": 50,
        "sm_count": 132,
        "clock_mhz": 1980,
        **changes,
    }
    path = folder / "gpu.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in content.items() if v is not None}), encoding="utf-8")
    return path


# case -> (changes to a good figures file, or None for no file; overrides beside target=h200-141gb; the line)
BAD_INPUT = {
    "missing l2_mb": ({"l2_mb": None}, {}, r"gpu\.yaml: missing 'l2_mb'"),
    "negative bandwidth": ({"memory_bandwidth_gbs": -1}, {}, r"memory_bandwidth_gbs -1 is not a positive number"),
    "no such file": (None, {}, r"absent\.yaml: cannot read the GPU figures file"),
    "target leaves it out": ({}, {"target": "t4"}, r"adds h200-141gb, but target=t4 leaves it out"),
    "unknown anchor": ({}, {"anchor": "h200"}, r"anchor=h200: no device figures for it"),
    "zero boosting rounds": ({}, {"per_call.max_iter": 0}, r"per_call.max_iter 0 is not a positive integer"),
    "not neusight data": (
        {},
        {"data": "embedded", "data.path": None, "anchor": "g3s.xlarge"},
        r"target_gpu needs the per-call records of a NeuSight folder",
    ),
}


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_target_gpu_input_is_one_line_before_any_run(tmp_path, case, monkeypatch):
    from profcast.pipeline import unmeasured_target
    from profcast.pipeline.job import prepare_job

    changes, more, message = BAD_INPUT[case]
    figures = tmp_path / "absent.yaml" if changes is None else bad_figures(tmp_path, **changes)

    def trains(*args, **kwargs):
        raise AssertionError("the per-call model trained before the bad input was refused")

    monkeypatch.setattr(unmeasured_target.PerCallModel, "fit", trains)  # every refusal comes before its training
    with pytest.raises(ProfcastError, match=message):
        prepare_job(compose_train(overrides(figures, **{"target": "h200-141gb", **more})))


@pytest.mark.slow
@needs_shared
def test_the_command_line_refuses_a_figures_file_missing_a_field_in_one_line(tmp_path):
    figures = bad_figures(tmp_path, sm_count=None)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "src.train", *overrides(figures, target="h200-141gb"), f"tracking_uri={uri}"]

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)

    assert done.returncode == 2, done.stderr
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("profcast: error:")]
    assert error.startswith(f"profcast: error: {figures}: missing 'sm_count'; expected keys fp32_tflops")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()  # failed before any run was opened: no store made


def test_a_per_call_max_iter_that_is_no_number_is_refused_by_the_schema():
    with pytest.raises(ProfcastError, match="per_call.max_iter"):
        compose_train(["per_call.max_iter=abc"])


@pytest.mark.slow
@needs_shared
def test_mlflow_models_serve_answers_the_unmeasured_gpu_as_json_marked_unmeasured(model_server, l4_job, served_answer):
    """Over HTTP, as users serve it: same numbers as the loaded model, and the mark survives the JSON."""
    import json
    import os
    import urllib.request

    from profcast.ingest.neusight_data import load_neusight_profiles

    table = load_neusight_profiles(path=NEUSIGHT)
    run = table[table["instance_name"] == ANCHOR].drop(columns=["instance_name"]).head(1)
    body = json.dumps({"dataframe_split": json.loads(run.to_json(orient="split", index=False))}).encode()
    bin_dir = str(Path(sys.executable).parent)  # uvicorn lives beside the interpreter
    env = {"MLFLOW_TRACKING_URI": l4_job["uri"], "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}

    with model_server(l4_job["model_uri"], l4_job["folder"] / "server.log", env=env) as server:
        request = urllib.request.Request(
            f"{server.url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            (row,) = json.loads(answer.read().decode())["predictions"]

    assert row["target_instance"] == TARGET and row["target_measured"] is False
    assert row["trained_on"].startswith("unmeasured GPU")
    assert row[BATCH_LATENCY] == pytest.approx(served_answer[BATCH_LATENCY].iloc[0], rel=1e-9)
    assert row["batch_latency_low"] < row[BATCH_LATENCY] < row["batch_latency_high"]


@pytest.mark.slow
@needs_shared
def test_a_size_whatif_for_the_unmeasured_gpu_is_refused_saying_why(l4_job):
    import mlflow
    from mlflow.exceptions import MlflowException

    from profcast.ingest.neusight_data import load_neusight_profiles
    from profcast.serve.model_folder import load_checked_model

    mlflow.set_tracking_uri(l4_job["uri"])
    model = load_checked_model(mlflow.artifacts.download_artifacts(l4_job["model_uri"]))
    table = load_neusight_profiles(path=NEUSIGHT)
    run = table[table["instance_name"] == ANCHOR].drop(columns=["instance_name"]).head(1)

    with pytest.raises(MlflowException, match="l4 was never measured: its size growth would be learned from forecasts"):
        model.predict(run.assign(whatif_batchsize=float(run["batchsize"].iloc[0] * 2)))


def test_the_served_benchmark_scores_error_coverage_and_width_per_pair():
    import pandas as pd

    from benchmarks.served_new_gpu import summary

    records = pd.DataFrame(
        {
            "anchor": ["a", "a"],
            "target": ["t", "t"],
            "measured_s": [1.0, 1.0],
            "predicted_s": [1.1, 0.5],  # 10% and 50% off
            "low_s": [0.9, 0.4],
            "high_s": [1.2, 0.6],  # the first holds the measurement, the second does not
            "logged_logo_mape": [12.0, 12.0],
            "copy_mape": [3.0, 3.0],
        }
    )

    row = summary(records).loc[("a", "t")]

    assert row["workloads"] == 2 and row["coverage_pct"] == pytest.approx(50)
    assert row["mean_error_pct"] == pytest.approx(30) and row["max_error_pct"] == pytest.approx(50)
    assert row["width_pct"] == pytest.approx((0.3 / 1.1 + 0.2 / 0.5) / 2 * 100)
