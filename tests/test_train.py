"""The training job end to end: MLflow runs, metrics, artifacts, models, bad input, a real sweep."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.train import train
from tests.test_bad_input import train_in_process

TARGET_METRICS = {
    "mape_mean",
    "mape_median",
    "wape",
    "total_mape",
    "false_nonzero_rate",
    "batch_latency_mape",
    "n_clipped",
}


def runs_of(tracking_uri) -> pd.DataFrame:
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name("profcast") is None:
        return pd.DataFrame(columns=["run_id", "status", "tags.mlflow.runName", "tags.mlflow.parentRunId"])
    return mlflow.search_runs(experiment_names=["profcast"])


def file_overrides(path, *extra):
    return ["data=file", f"data.path={path}", "anchor=slow.gpu", *extra]


def test_job_logs_a_nested_run_per_target_with_metrics_artifacts_and_model(profile_csv, tracking_uri, compose_config):
    results = train(compose_config(file_overrides(profile_csv, "regressor=ratio")))
    assert set(results) == {"fast.gpu", "mid.gpu"}
    runs = runs_of(tracking_uri)
    job = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    targets = runs[runs["tags.mlflow.parentRunId"] == job.run_id]
    assert len(runs) == 3 and len(targets) == 2 and (runs.status == "FINISHED").all()
    assert job["params.regressor"] == "ratio" and job["metrics.mean_wape"] > 0
    for _, run in targets.iterrows():
        assert {run["params.anchor"], run["params.regressor"], run["params.features"], run["params.split"]} == {
            "slow.gpu",
            "ratio",
            "all",
            "model",
        }
        assert run["params.pairing"] == "same_exp"
        assert all(np.isfinite(run[f"metrics.{name}"]) for name in TARGET_METRICS)
        assert np.isfinite(run["metrics.mape.Device_Conv2D"])
        artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=run.run_id)}
        assert {"column_errors.csv", "heldout_predictions.csv", "pred_vs_true.png", "column_errors.png"} <= artifacts
    run = targets.iloc[0]
    # each target's regressor is logged once, inside the job's servable model the target run points to
    assert "model" not in artifacts
    assert run["tags.profcast.job_model_uri"] == job["tags.profcast.job_model_uri"]
    model = mlflow.pyfunc.load_model(run["tags.profcast.job_model_uri"])
    anchor_rows = pd.read_csv(profile_csv).query("instance_name == 'slow.gpu'").head(4)
    predicted = model.predict(anchor_rows.assign(target_instance=run["params.target"]))
    assert len(predicted) == 4 and (predicted["target_instance"] == run["params.target"]).all()
    assert (predicted["Device_Conv2D"] > 0).all()
    # the logged metrics are the ones train() returned
    assert run["metrics.wape"] == pytest.approx(results[run["params.target"]]["wape"])


def test_structural_zero_trap_is_measured(profile_csv, tracking_uri, compose_config):
    """Holding out resnet (the only BatchNorm model), a linear model predicts BatchNorm time for others."""
    cfg = compose_config(file_overrides(profile_csv, "regressor=lr", "target=fast.gpu", "log_model=false"))
    lr_rate = train(cfg)["fast.gpu"]["false_nonzero_rate"]
    cfg = compose_config(file_overrides(profile_csv, "regressor=ratio", "target=fast.gpu", "log_model=false"))
    ratio_rate = train(cfg)["fast.gpu"]["false_nonzero_rate"]
    assert ratio_rate == 0.0 and lr_rate > ratio_rate


@pytest.mark.parametrize(
    "option",
    [
        "features=nonzero",
        "features=top10",
        "features=top50",
        "features=top90",
        "split=model_dataset",
        "split=model_dataset_batch",
        "split.holdout=[vgg]",
        "pairing=cross",
        "pairing=median",
        "pairing=same_exp",
        "regressor=knn",
        "regressor=dt",
        "regressor=rf",
        "regressor.target_transform=log1p",
    ],
)
def test_every_option_runs(profile_csv, tracking_uri, compose_config, option):
    cfg = compose_config(file_overrides(profile_csv, "regressor=lr", "target=fast.gpu", "log_model=false", option))
    metrics = train(cfg)["fast.gpu"]
    assert np.isfinite(metrics["wape"]) and metrics["n_test_rows"] > 0


@pytest.fixture
def run_train(run_cli):
    """run_train(*args, env_uri): ``python -m profcast.train ARGS`` in its own process against the store ``env_uri``."""
    return lambda *args, env_uri: run_cli(["-m", "profcast.train", *args], env_uri=env_uri, timeout=600)


def bad_tables(tmp_path, profile_table):
    """(name, path, expected words in the error) for each kind of bad input."""
    negative = profile_table.copy()
    negative.loc[5, "Device_Relu"] = -1.0
    infinite = profile_table.copy()
    infinite.loc[2, "Host_IDLE"] = np.inf
    text = profile_table.astype({"Device_Conv2D": object})
    text.loc[1, "Device_Conv2D"] = "12ms"
    cases = {
        "missing_key": (profile_table.drop(columns="model"), "missing key column(s) model"),
        "negative": (negative, "column 'Device_Relu' line 7 value -1.0 is negative"),
        "infinite": (infinite, "column 'Host_IDLE' line 4 value inf is infinite"),
        "text": (text, "column 'Device_Conv2D' line 3 value '12ms' is not a number"),
    }
    for name, (table, words) in cases.items():
        path = tmp_path / f"{name}.csv"
        table.to_csv(path, index=False)
        yield name, [f"data.path={path}"], words
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    yield "empty", [f"data.path={empty}"], "empty.csv: the file is empty"


# The two ways the command turns a refusal into one line, each in a real process: a user error raised inside
# the job (run_job) and one raised composing the config (profcast.train.command). The other cases take one of
# these two paths; they run in this process, through the same run_job (exit code and stderr as the command's).
REFUSED_IN_A_PROCESS = ("negative", "unknown_pairing")


def test_bad_input_fails_in_one_line_and_keeps_earlier_runs(
    run_train, tmp_path, profile_csv, profile_table, tracking_uri, compose_config, capsys
):
    # The earlier runs, trained in this process: what matters is that the refusals below leave them alone.
    train(compose_config(file_overrides(profile_csv, "regressor=ratio", "target=fast.gpu", "log_model=false")))
    before = runs_of(tracking_uri)[["run_id", "status"]]
    assert set(before["status"]) == {"FINISHED"}
    cases = list(bad_tables(tmp_path, profile_table)) + [
        (
            "unknown_anchor",
            [f"data.path={profile_csv}", "anchor=p9.huge"],
            "unknown anchor instance 'p9.huge'; instances in the data: fast.gpu, mid.gpu, slow.gpu",
        ),
        (
            "unknown_pairing",
            [f"data.path={profile_csv}", "pairing=zip"],
            "Could not find 'pairing/zip'. Available options in 'pairing': auto, cross, median, same_exp",
        ),
        ("no_path", [], "data=file needs data.path=PATH"),
    ]
    assert set(REFUSED_IN_A_PROCESS) <= {name for name, _, _ in cases}
    for name, overrides, words in cases:
        if name in REFUSED_IN_A_PROCESS:
            result = run_train("data=file", "anchor=slow.gpu", *overrides, env_uri=tracking_uri)
            code, stderr = result.returncode, result.stderr
        else:
            code, stderr = train_in_process(["data=file", "anchor=slow.gpu", *overrides], capsys)
        assert code == 2, (name, stderr)
        error_lines = [line for line in stderr.splitlines() if line.startswith("profcast: error:")]
        assert len(error_lines) == 1 and words in error_lines[0], (name, stderr)
        assert "Traceback" not in stderr, name
    after = runs_of(tracking_uri)[["run_id", "status"]]
    pd.testing.assert_frame_equal(
        after.sort_values("run_id").reset_index(drop=True), before.sort_values("run_id").reset_index(drop=True)
    )


def test_unknown_option_name_is_refused_before_any_run(run_train, profile_csv, tracking_uri):
    result = run_train(*file_overrides(profile_csv, "regressor=xgb"), env_uri=tracking_uri)
    assert result.returncode != 0
    assert "regressor" in result.stderr and "xgb" in result.stderr
    assert len(runs_of(tracking_uri)) == 0


def test_train_raises_user_error_before_opening_a_run(profile_csv, tracking_uri, compose_config):
    with pytest.raises(ProfcastError, match="unknown target instance 'nope'"):
        train(compose_config(file_overrides(profile_csv, "target=nope")))
    assert len(runs_of(tracking_uri)) == 0


@pytest.mark.slow
def test_multirun_sweep_nests_jobs_under_one_parent(run_train, tmp_path, profile_csv, tracking_uri):
    result = run_train(
        "-m",
        "regressor=ratio,lr",
        *file_overrides(profile_csv, "log_model=false"),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env_uri=tracking_uri,
    )
    assert result.returncode == 0, result.stderr
    runs = runs_of(tracking_uri)
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parents) == 1 and parents.iloc[0].status == "FINISHED"
    jobs = runs[runs["tags.mlflow.parentRunId"] == parents.iloc[0].run_id]
    assert sorted(jobs["params.regressor"]) == ["lr", "ratio"]
    for job_id in jobs.run_id:
        assert (runs["tags.mlflow.parentRunId"] == job_id).sum() == 2  # one per target
    assert (tmp_path / "sweep" / "0" / ".hydra" / "config.yaml").exists()


@pytest.mark.slow
def test_real_profet_data_logs_three_targets(real_profet, tracking_uri, compose_config):
    cfg = compose_config(
        [
            "data=file",
            f"data.path={real_profet}",
            "anchor=p2.xlarge",
            "regressor=ratio",
            "log_model=false",
            "whatif=none",
        ]
    )
    results = train(cfg)
    assert sorted(results) == ["g3s.xlarge", "g4dn.xlarge", "p3.2xlarge"]
    assert all(metrics["n_test_rows"] == 2277 for metrics in results.values())


def test_bad_regressor_settings_are_user_errors(profile_csv, tracking_uri, compose_config):
    with pytest.raises(ProfcastError, match="regressor 'rf' cannot be built from its config"):
        train(compose_config(file_overrides(profile_csv, "regressor=rf", "+regressor.estimator.no_such_option=3")))
    assert len(runs_of(tracking_uri)) == 0
    cfg = compose_config(
        file_overrides(profile_csv, "regressor=knn", "regressor.estimator.n_neighbors=500", "log_model=false")
    )
    with pytest.raises(
        ProfcastError,
        match=r"slow.gpu -> fast.gpu: predicting \d+ held-out rows failed: Expected n_neighbors <= n_samples_fit",
    ):
        train(cfg)
    assert set(runs_of(tracking_uri).status) == {"FAILED"}  # the interrupted job is not marked FINISHED
