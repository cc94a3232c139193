"""The serving speed-ups keep every answer: one shared kNN search, one OpenMP thread, cheaper answer shapes."""

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor

from profcast.jobmodel.answer_format import OUTPUT_PARAM
from profcast.jobmodel.model import JobModel
from profcast.jobmodel.one_thread import OpenMPLimit
from profcast.jobmodel.requests import INPUT_ROW, PREDICTED_TOTAL, TARGET_INSTANCE
from profcast.jobmodel.storage import load_job_model_folder, save_job_model
from profcast.pipeline.pairing import pair_runs
from profcast.regressors.profile_regressor import ProfileRegressor, _apply_latency_mapping
from profcast.schema import BATCH_LATENCY
from profcast.serve.loader import ServedJobModel
from tests.conftest import synthetic_profiles

ANCHOR = "slow.gpu"
TARGETS = ("mid.gpu", "fast.gpu")


@pytest.fixture(scope="module")
def pairs():
    profiles = synthetic_profiles()
    rng = np.random.default_rng(1)
    for number in range(12):
        profiles[f"Device_Extra{number}"] = rng.lognormal(5, 1, len(profiles))
    return {target: pair_runs(profiles, ANCHOR, target, "auto") for target in TARGETS}


def knn_job(pairs, transform="none", drop_rows_of=None, weights="uniform") -> tuple[JobModel, dict]:
    """A job model of one kNN per target; ``drop_rows_of`` is fitted on fewer anchor rows than the others."""
    models = {}
    for target, paired in pairs.items():
        anchor, goal = paired.anchor_profile, paired.target_profile
        if target == drop_rows_of:
            anchor, goal = anchor.iloc[2:], goal.iloc[2:]
        regressor = ProfileRegressor(KNeighborsRegressor(n_neighbors=3, weights=weights), target_transform=transform)
        models[target] = regressor.fit(anchor, goal)
    op_columns = list(pairs[TARGETS[0]].anchor_profile.drop(columns=BATCH_LATENCY).columns)
    outputs = [c for c in models[TARGETS[0]].output_columns_ if c != BATCH_LATENCY]
    return JobModel(ANCHOR, models, op_columns, outputs, True), models


def per_target(job: JobModel, request: pd.DataFrame) -> pd.DataFrame:
    """The same job model's answer with every target predicting on its own (no shared search)."""
    shared, job._shared_searches = job._shared_searches, []
    try:
        return job.predict(request)
    finally:
        job._shared_searches = shared


@pytest.mark.parametrize("transform, weights", [("none", "uniform"), ("log1p", "uniform"), ("none", "distance")])
def test_targets_fitted_on_the_same_rows_share_one_search_and_answer_the_same(pairs, transform, weights):
    job, _ = knn_job(pairs, transform, weights=weights)
    assert [group.targets for group in job._shared_searches] == [list(TARGETS)]
    request = pairs[TARGETS[0]].anchor_profile.sample(40, replace=True, random_state=0) * 1.07  # not training rows
    for rows in (request.head(1), request):
        pd.testing.assert_frame_equal(job.predict(rows), per_target(job, rows), check_exact=True)
    one_target = request.head(3).assign(**{TARGET_INSTANCE: [TARGETS[1], None, TARGETS[0]]})
    assert list(job.predict(one_target)[TARGET_INSTANCE]) == [TARGETS[1], TARGETS[0], TARGETS[1], TARGETS[0]]


def test_targets_fitted_on_different_rows_keep_their_own_search(pairs):
    job, _ = knn_job(pairs, drop_rows_of=TARGETS[1])
    assert job._shared_searches == []
    request = pairs[TARGETS[0]].anchor_profile.head(5)
    assert len(job.predict(request)) == 5 * len(TARGETS)


def test_a_saved_and_loaded_knn_job_model_shares_its_search(tmp_path, pairs):
    job, models = knn_job(pairs, "log1p")
    save_job_model(tmp_path, ANCHOR, models, job.op_columns)
    loaded = load_job_model_folder(tmp_path)
    assert len(loaded._shared_searches) == 1
    request = pairs[TARGETS[1]].anchor_profile.head(9)
    pd.testing.assert_frame_equal(loaded.predict(request), job.predict(request), check_exact=True)


def test_latency_mapping_is_linear_regression_predict_to_the_bit():
    rng = np.random.default_rng(3)
    totals = rng.lognormal(8, 2, 500)
    mapping = LinearRegression().fit(np.log(totals[:50]).reshape(-1, 1), np.log(rng.lognormal(-3, 1, 50)))
    expected = np.exp(mapping.predict(np.log(np.maximum(totals, 1e-9)).reshape(-1, 1)))
    np.testing.assert_array_equal(_apply_latency_mapping(mapping, totals), expected)


def test_openmp_runs_one_thread_inside_the_limit_and_as_before_after():
    from threadpoolctl import threadpool_info

    def openmp_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"}

    limit = OpenMPLimit()
    before = openmp_threads()
    with limit():
        inside = openmp_threads()
    with limit():  # reusable: the second request is limited too
        assert set(openmp_threads().values()) <= {1}
    assert set(inside.values()) <= {1}
    assert openmp_threads() == before


def test_answer_shapes_carry_the_same_numbers(pairs):
    job, _ = knn_job(pairs)
    request = pairs[TARGETS[0]].anchor_profile.head(4)
    records = job.predict(request)
    columns = job.predict(request, params={OUTPUT_PARAM: "columns"})
    assert list(columns) == list(records.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(columns), records, check_exact=True)
    totals = job.predict(request, params={OUTPUT_PARAM: "totals"})
    assert list(totals.columns) == [INPUT_ROW, TARGET_INSTANCE, BATCH_LATENCY, PREDICTED_TOTAL]
    pd.testing.assert_frame_equal(totals, records[totals.columns], check_exact=True)
    pd.testing.assert_frame_equal(job.predict(request, params={OUTPUT_PARAM: "records"}), records, check_exact=True)


def test_an_unknown_answer_shape_is_a_bad_request(pairs):
    job, _ = knn_job(pairs)
    with pytest.raises(MlflowException, match="param 'output' is 'csv'; accepted: records, columns, totals") as caught:
        ServedJobModel(job).predict(pairs[TARGETS[0]].anchor_profile.head(1), params={OUTPUT_PARAM: "csv"})
    assert caught.value.get_http_status_code() == 400
