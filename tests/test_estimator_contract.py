"""Every profcast regressor keeps scikit-learn's contract where it applies to profile -> profile models.

scikit-learn's generic checks fit X -> y with a 1-D y; ours map an anchor profile to a target
profile with the same op columns, so the generic checks that need fitting do not apply. The API
checks below do, and the profile-contract checks after them are our version of the fitting ones.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.utils.estimator_checks import check_estimator

from profcast.pipeline.pairing import pair_runs
from profcast.regressors.profet import ProfetLatencyRegressor
from profcast.regressors.profile_regressor import ProfileRegressor
from profcast.regressors.ratio import MedianRatioRegressor
from profcast.regressors.transfer import TransferRegressor
from tests.conftest import synthetic_profiles

API_CHECKS = {
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimator_tags_renamed",
    "check_estimators_unfitted",
    "check_get_params_invariance",
    "check_mixin_order",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_set_params",
    "check_valid_tag_types",
}
ESTIMATORS = [
    ProfileRegressor(LinearRegression()),
    ProfileRegressor(KNeighborsRegressor(n_neighbors=3), target_transform="log1p"),
    ProfileRegressor(MedianRatioRegressor()),
    TransferRegressor(max_iter=10),
    ProfetLatencyRegressor(n_estimators=5),
]
IDS = ["lr", "knn-log1p", "ratio", "transfer", "profet"]


@pytest.fixture(scope="module")
def paired():
    return pair_runs(synthetic_profiles(), "slow.gpu", "fast.gpu")


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_scikit_learn_api_checks_pass(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = [r for r in check_estimator(estimator, on_fail=None) if r["check_name"] in API_CHECKS]
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert len({r["check_name"] for r in results}) >= len(API_CHECKS) - 1 and not failed, failed


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_profile_contract(estimator, paired):
    model = clone(estimator)
    with pytest.raises(NotFittedError):
        model.predict(paired.anchor_profile)
    anchor, target = paired.anchor_profile.copy(), paired.target_profile.copy()
    assert model.fit(anchor, target) is model
    pd.testing.assert_frame_equal(anchor, paired.anchor_profile)  # fit leaves its input alone
    predicted = model.predict(anchor)
    assert predicted.shape == (len(anchor), len(model.output_columns_))
    assert not any(name.endswith("_") for name in clone(model).__dict__)  # clone drops learned state
    # refitting gives the same model; row order does not change any row's prediction
    assert np.array_equal(clone(estimator).fit(anchor, target).predict(anchor), predicted, equal_nan=True)
    order = np.random.default_rng(0).permutation(len(anchor))
    assert np.allclose(model.predict(anchor.iloc[order]), predicted[order], equal_nan=True)
    restored = skops.io.loads(skops.io.dumps(model), trusted=skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert np.array_equal(restored.predict(anchor), predicted, equal_nan=True)


@pytest.mark.parametrize(
    "estimator, bad",
    [
        (ProfileRegressor(LinearRegression()), {"target_transform": "sqrt"}),
        (TransferRegressor(), {"learning_rate": -1.0}),
        (TransferRegressor(), {"max_training_cells": 0}),
        (ProfetLatencyRegressor(), {"n_estimators": "many"}),
    ],
    ids=["target_transform", "learning_rate", "max_training_cells", "n_estimators"],
)
def test_bad_parameters_raise_value_error_naming_them(estimator, bad, paired):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        clone(estimator).set_params(**bad).fit(paired.anchor_profile, paired.target_profile)
