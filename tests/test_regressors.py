"""The profile contract every regressor follows, and the median-ratio baseline."""

import numpy as np
import pytest
import skops.io
from sklearn.base import clone
from sklearn.linear_model import LinearRegression

from profcast.pipeline.pairing import pair_runs
from profcast.regressors.profile_regressor import ProfileRegressor
from profcast.regressors.ratio import MedianRatioRegressor


def test_median_ratio_learns_per_column_ratios_and_keeps_zeros():
    anchor = np.array([[10.0, 4.0, 0.0], [20.0, 8.0, 0.0], [30.0, 0.0, 5.0]])
    target = np.array([[5.0, 12.0, 0.0], [10.0, 24.0, 0.0], [15.0, 0.0, 10.0]])
    model = MedianRatioRegressor().fit(anchor, target)
    assert model.ratios_ == pytest.approx([0.5, 3.0, 2.0])
    assert model.predict([[40.0, 0.0, 1.0]])[0] == pytest.approx([20.0, 0.0, 2.0])


def test_profile_regressor_outputs_ops_then_batch_latency(profile_table):
    paired = pair_runs(profile_table, "slow.gpu", "fast.gpu")
    model = ProfileRegressor(MedianRatioRegressor()).fit(paired.anchor_profile, paired.target_profile)
    assert model.output_columns_[-1] == "batch_latency"
    predicted = model.predict(paired.anchor_profile)
    assert predicted.shape == (len(paired), len(model.output_columns_))
    relative_error = (
        np.abs(predicted[:, -1] - paired.target_profile["batch_latency"]) / paired.target_profile["batch_latency"]
    )
    assert np.median(relative_error) < 0.1


def test_missing_ops_count_as_zero_and_unknown_ops_are_ignored(profile_table):
    paired = pair_runs(profile_table, "slow.gpu", "fast.gpu")
    model = ProfileRegressor(LinearRegression()).fit(paired.anchor_profile, paired.target_profile)
    full = model.predict(paired.anchor_profile.head(2))
    lacking = paired.anchor_profile.head(2).drop(columns=["Device_Unused"]).assign(Device_Novel=5.0)
    assert np.allclose(model.predict(lacking), full)


def test_log1p_transform_clones_and_round_trips_through_skops(profile_table):
    paired = pair_runs(profile_table, "slow.gpu", "fast.gpu")
    model = clone(ProfileRegressor(MedianRatioRegressor(), target_transform="log1p"))
    model.fit(paired.anchor_profile, paired.target_profile)
    blob = skops.io.dumps(model)
    restored = skops.io.loads(blob, trusted=skops.io.get_untrusted_types(data=blob))
    assert np.allclose(restored.predict(paired.anchor_profile), model.predict(paired.anchor_profile))


def test_unknown_target_transform_is_refused(profile_table):
    paired = pair_runs(profile_table, "slow.gpu", "fast.gpu")
    with pytest.raises(ValueError, match="'target_transform' parameter of ProfileRegressor must be"):
        ProfileRegressor(LinearRegression(), target_transform="sqrt").fit(paired.anchor_profile, paired.target_profile)
