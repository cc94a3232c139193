"""Speed changes keep every answer: parallel folds, one-thread serving, batched logging, optional plots."""

from functools import partial

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from profcast.errors import ProfcastError
from profcast.jobmodel.model import JobModel, use_one_thread
from profcast.jobmodel.requests import (
    INPUT_ROW,
    PREDICTED_TOTAL,
    TARGET_INSTANCE,
    checked_anchor_profiles,
    requested_targets,
)
from profcast.jobmodel.storage import load_job_model_folder, save_job_model
from profcast.pipeline import parallel
from profcast.pipeline.evaluation import cross_validate
from profcast.pipeline.features import AllColumns
from profcast.pipeline.pairing import pair_runs
from profcast.pipeline.splits import GroupSplit
from profcast.schema import BATCH_LATENCY
from profcast.train import train
from tests.conftest import synthetic_profiles

ANCHOR = "slow.gpu"


def small_regressors():
    """Each kind of estimator a job model can hold, small enough to fit in a moment."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.neighbors import KNeighborsRegressor

    from profcast.regressors.profet import ProfetLatencyRegressor
    from profcast.regressors.profile_regressor import ProfileRegressor
    from profcast.regressors.transfer import TransferRegressor

    return {
        "rf": ProfileRegressor(RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=-1)),
        "knn": ProfileRegressor(KNeighborsRegressor(n_neighbors=3, n_jobs=-1), target_transform="log1p"),
        "profet": ProfetLatencyRegressor(n_estimators=10, n_jobs=-1),
        "transfer": TransferRegressor(max_iter=20),
    }


@pytest.fixture(scope="module")
def pairs():
    profiles = synthetic_profiles()
    rng = np.random.default_rng(0)
    for number in range(12):  # enough ops that the order of adding up a total matters
        profiles[f"Device_Extra{number}"] = rng.lognormal(5, 1, len(profiles))
    return {target: pair_runs(profiles, ANCHOR, target, "auto") for target in ("mid.gpu", "fast.gpu")}


def reference_predict(job: JobModel, request: pd.DataFrame) -> pd.DataFrame:
    """JobModel.predict as it was before the speed work: a pandas frame per target, concatenated."""
    profiles = request.reset_index(drop=True)
    anchor_profiles = checked_anchor_profiles(profiles, job.op_columns, job.anchor)
    wanted = requested_targets(profiles, job.targets)
    parts = []
    for target in job.targets:
        rows = np.flatnonzero((wanted.isna() | (wanted == target)).to_numpy())
        if not rows.size:
            continue
        model = job.models[target]
        raw = pd.DataFrame(model.predict(anchor_profiles.iloc[rows]), columns=model.output_columns_)
        ops = raw.reindex(columns=job.output_op_columns, fill_value=0.0).to_numpy(dtype=float).clip(min=0.0)
        frame = pd.DataFrame(ops, columns=job.output_op_columns)
        frame.insert(0, INPUT_ROW, rows.astype("int64"))
        frame.insert(1, TARGET_INSTANCE, target)
        if job.predicts_latency:
            frame[BATCH_LATENCY] = raw[BATCH_LATENCY].to_numpy(dtype=float) if BATCH_LATENCY in raw else np.nan
        frame[PREDICTED_TOTAL] = ops.sum(axis=1)
        parts.append(frame)
    predicted = pd.concat(parts, ignore_index=True)
    rank = predicted[TARGET_INSTANCE].map({target: number for number, target in enumerate(job.targets)})
    return predicted.iloc[np.lexsort((rank.to_numpy(), predicted[INPUT_ROW].to_numpy()))].reset_index(drop=True)


# profet is left out: it predicts batch latency only, and a served answer refuses its NaN op times
@pytest.mark.parametrize("kind", ["rf", "knn", "transfer"])
def test_loaded_job_model_answers_exactly_as_before(tmp_path, pairs, kind):
    """Train, predict the old way on the fitted models, save, load (one thread), predict: identical frames."""
    regressor = small_regressors()[kind]
    models = {}
    for number, (target, paired) in enumerate(pairs.items()):
        columns = list(paired.anchor_profile.columns)
        if number:  # the second target knows one op fewer: its column must come back as 0
            columns.remove("Device_Relu")
        models[target] = clone(regressor).fit(paired.anchor_profile[columns], paired.target_profile[columns])
    op_columns = list(pairs["mid.gpu"].anchor_profile.drop(columns=BATCH_LATENCY).columns)
    save_job_model(tmp_path, ANCHOR, models, op_columns)
    fitted = JobModel(ANCHOR, models, op_columns, *_outputs(tmp_path))
    loaded = load_job_model_folder(tmp_path)
    request = pairs["mid.gpu"].anchor_profile.head(7).copy()
    one_target = request.assign(**{TARGET_INSTANCE: ["fast.gpu", None, "mid.gpu", "", None, "fast.gpu", None]})
    for rows in (request.head(1), request, one_target):
        threaded = reference_predict(fitted, rows)
        for model in models.values():
            use_one_thread(model)
        before = reference_predict(fitted, rows)
        pd.testing.assert_frame_equal(loaded.predict(rows), before, check_exact=True)
        # With n_jobs=-1 a forest adds its trees in whatever order its threads finish, so the old
        # threaded answers themselves differed from call to call in the last bits; never more.
        pd.testing.assert_frame_equal(loaded.predict(rows), threaded, check_exact=False, rtol=1e-12, atol=0)
        for model in models.values():
            model.set_params(**{name: -1 for name in model.get_params() if name.endswith("n_jobs")})
    assert all(getattr(part, "n_jobs", 1) == 1 for model in loaded.models.values() for part in _estimators(model))


def _outputs(folder):
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest["output_op_columns"], manifest["predicts_latency"]


def _estimators(model):
    from sklearn.base import BaseEstimator

    found, pending = [], [model]
    while pending:
        part = pending.pop()
        found.append(part)
        pending += [value for value in vars(part).values() if isinstance(value, BaseEstimator)]
    return found


@pytest.mark.parametrize("kind", ["rf", "transfer"])
def test_folds_in_worker_processes_give_the_same_predictions_and_refit(pairs, monkeypatch, kind):
    paired = pairs["fast.gpu"]
    folds = GroupSplit().folds(paired.keys)
    make_regressor = partial(clone, small_regressors()[kind])
    serial = cross_validate(paired, folds, make_regressor, AllColumns().select, n_jobs=1, refit=True)
    monkeypatch.setattr(parallel, "WORTH_A_POOL_SECONDS", 0.0)  # force the pool however quick the fits
    pooled = cross_validate(paired, folds, make_regressor, AllColumns().select, n_jobs=2, refit=True)
    # A forest with n_jobs=-1 predicts by adding its trees in thread-finishing order: last-bit noise
    # that was there before (see test_loaded_job_model_answers_exactly_as_before); boosting is exact.
    tolerance = {"check_exact": False, "rtol": 1e-12, "atol": 0} if kind == "rf" else {"check_exact": True}
    pd.testing.assert_frame_equal(pooled.predicted, serial.predicted, **tolerance)
    np.testing.assert_array_equal(pooled.fold, serial.fold)
    refit_answers = [held.refit[0].predict(paired.anchor_profile) for held in (pooled, serial)]
    np.testing.assert_allclose(*refit_answers, rtol=1e-12 if kind == "rf" else 0, atol=0)


def test_workers_never_get_more_threads_than_cores(monkeypatch):
    monkeypatch.setattr("joblib.cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [parallel.threads_per_process(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a parent (user, parallel launcher) gave this process 2 threads
    assert parallel.resolve_n_jobs("auto") == 2
    assert parallel.resolve_n_jobs(-1) == 2


def test_a_forest_with_n_jobs_minus_one_uses_the_workers_thread_share(monkeypatch):
    from joblib import effective_n_jobs

    seen = parallel.limited_threads(lambda: effective_n_jobs(-1), 1, ())
    assert seen == 1


@pytest.mark.parametrize("setting", ["0", "two", "1.5", -2])
def test_bad_n_jobs_is_a_one_line_error(setting):
    with pytest.raises(ProfcastError, match="n_jobs must be 'auto', -1 or a whole number >= 1"):
        parallel.resolve_n_jobs(setting)


def test_same_metrics_for_any_n_jobs_and_plots_optional(tracking_uri, compose_config, profile_csv):
    common = [
        "data=file",
        f"data.path={profile_csv}",
        f"anchor={ANCHOR}",
        "regressor=knn",
        "regressor.estimator.n_neighbors=2",
    ]
    one = train(compose_config([*common, "n_jobs=1"]))
    auto = train(compose_config([*common, "n_jobs=auto", "log_plots=false"]))
    assert one == auto
    runs = mlflow.search_runs(experiment_names=["profcast"], filter_string="params.n_jobs = 'auto'")
    target_runs = runs[runs["tags.mlflow.parentRunId"].notna()]
    artifacts = {entry.path for entry in mlflow.MlflowClient().list_artifacts(target_runs.run_id.iloc[0])}
    assert "heldout_predictions.csv" in artifacts and not any(name.endswith(".png") for name in artifacts)


def test_a_targets_whatif_is_fitted_once_per_process_and_is_the_same_fit(pairs):
    """Jobs of a sweep over regressors share a target's what-if: same data, same fit, fitted once."""
    from profcast.pipeline import calibration
    from profcast.regressors.whatif import SizeWhatIf

    paired = next(iter(pairs.values()))
    keys, anchor, target = (
        frame.reset_index(drop=True) for frame in (paired.keys, paired.anchor_profile, paired.target_profile)
    )
    calibration._FITTED_WHATIFS.clear()

    def fitted(*frames, **params):
        return calibration.fitted_whatifs([(*frames, params)])[0]

    first = fitted(keys, anchor, target, max_iter=20)
    assert fitted(keys.copy(), anchor.copy(), target.copy(), max_iter=20) is first
    assert fitted(keys, anchor, target, max_iter=21) is not first  # other settings: another fit
    changed = target.copy()
    changed.iloc[0, changed.columns.get_loc(BATCH_LATENCY)] *= 2
    assert fitted(keys, anchor, changed, max_iter=20) is not first  # other data: another fit
    fresh = SizeWhatIf(max_iter=20).fit(keys, anchor, target)
    moved = keys.assign(batchsize=keys["batchsize"] * 2)
    np.testing.assert_array_equal(
        first.log_scale(anchor, keys["batchsize"], keys["dataset"], moved["batchsize"], keys["dataset"]),
        fresh.log_scale(anchor, keys["batchsize"], keys["dataset"], moved["batchsize"], keys["dataset"]),
    )


def test_merged_calibration_folds_never_train_on_the_rows_they_hold_out():
    from profcast.pipeline.calibration import merged_folds

    groups = np.repeat(np.arange(12), 5)  # 12 held-out models of 5 runs each
    folds = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in range(12)]
    fold_of_row = groups.copy()
    merged, merged_of_row = merged_folds(folds, fold_of_row, len(groups), 4)
    assert len(merged) == 4
    assert sorted(np.concatenate([test for _, test in merged]).tolist()) == list(range(60))  # every row held out once
    for number, (train_rows, test) in enumerate(merged):
        assert np.intersect1d(train_rows, test).size == 0 and train_rows.size + test.size == 60
        assert set(merged_of_row[test]) == {number} and len(set(groups[test])) == 3  # whole models, 3 per fold
    few = folds[:3]
    assert merged_folds(few, fold_of_row, 60, 4)[0] == few  # fewer folds than the cap: unchanged
