"""Size what-if, second profile, PROFET's scaler and conformal intervals on data with known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profcast.pipeline.pairing import pair_runs
from profcast.regressors.intervals import (
    ConformalInterval,
    coverage,
    leave_group_out_residuals,
    log_residuals,
    mean_width,
)
from profcast.regressors.profet_scaler import ProfetBatchScaler
from profcast.regressors.second_profile import SecondProfileLatency, second_profile_rows
from profcast.regressors.whatif import SizeWhatIf, input_size
from tests.conftest import synthetic_profiles


def test_conformal_interval_covers_its_share_of_fresh_residuals():
    rng = np.random.default_rng(0)
    calibration = ConformalInterval().fit(rng.normal(0.0, 0.1, 2000))
    truth = np.exp(rng.normal(0.0, 0.1, 5000))
    low, high = calibration.bounds(np.ones(5000))
    assert 77 <= coverage(truth, low, high) <= 83
    # An 80% interval of a N(0, 0.1) log residual spans about 2 x 1.28 x 0.1 in log space.
    assert mean_width(np.ones(5000), low, high) == pytest.approx(100 * (np.exp(0.128) - np.exp(-0.128)), rel=0.1)


def test_conformal_strata_get_their_own_width():
    rng = np.random.default_rng(1)
    residuals = np.concatenate([rng.normal(0, 0.05, 500), rng.normal(0, 0.5, 500)])
    strata = np.repeat([1, 4], 500)
    calibration = ConformalInterval().fit(residuals, strata)
    low, high = calibration.bounds(np.ones(2), np.array([1, 4]))
    assert (high[1] - low[1]) > 5 * (high[0] - low[0])
    low, high = calibration.bounds(np.ones(1), np.array([3]))  # an unseen stratum: the pooled quantiles
    assert low[0] == pytest.approx(np.exp(calibration.quantiles_[0]))


def grouped_residuals(rng, n_groups, rows_per_group, bias_spread=0.2, within_spread=0.05):
    """Log residuals of held-out models: a bias per model (a model misjudged on all its runs) + noise."""
    biases = rng.normal(0.0, bias_spread, n_groups)
    groups = np.repeat(np.arange(n_groups), rows_per_group)
    return biases[groups] + rng.normal(0.0, within_spread, groups.size), groups


def new_group_coverage(rng, bias_spread, within_spread, repeats=400) -> dict[str, float]:
    """Mean coverage of a 12th model's runs by intervals calibrated on 11 models, pooled and grouped."""
    covered = {"pooled": [], "grouped": []}
    for _ in range(repeats):
        residuals, groups = grouped_residuals(rng, 12, 100, bias_spread, within_spread)
        held_out = groups == 11
        truth = np.exp(residuals[held_out])  # forecasts of 1.0, so truth = exp(residual)
        for name, calibration_groups in (("pooled", None), ("grouped", groups[~held_out])):
            calibration = ConformalInterval().fit(residuals[~held_out], groups=calibration_groups)
            low, high = calibration.bounds(np.ones(held_out.sum()))
            covered[name].append(coverage(truth, low, high))
    return {name: float(np.mean(values)) for name, values in covered.items()}


def test_grouped_calibration_covers_more_of_a_new_model_when_models_are_misjudged_alike():
    # Mostly a per-model bias: pooled rows count 1,100 runs as independent and under-cover a new model.
    covered = new_group_coverage(np.random.default_rng(3), bias_spread=0.2, within_spread=0.05)
    assert covered["pooled"] < 76
    assert covered["grouped"] > covered["pooled"] + 0.5


def test_grouped_calibration_stays_near_nominal_without_group_biases():
    covered = new_group_coverage(np.random.default_rng(5), bias_spread=0.0, within_spread=0.1, repeats=100)
    assert 77 <= covered["pooled"] <= 83 and 77 <= covered["grouped"] <= 83


def test_grouped_calibration_with_one_group_pools_the_rows():
    residuals = np.linspace(-0.5, 0.5, 101)
    pooled = ConformalInterval().fit(residuals).quantiles_
    assert ConformalInterval().fit(residuals, groups=np.zeros(101)).quantiles_ == pooled


def test_grouped_calibration_keeps_strata_apart():
    rng = np.random.default_rng(4)
    narrow, narrow_groups = grouped_residuals(rng, 8, 50, bias_spread=0.02, within_spread=0.02)
    wide, wide_groups = grouped_residuals(rng, 8, 50, bias_spread=0.4, within_spread=0.02)
    calibration = ConformalInterval().fit(
        np.concatenate([narrow, wide]), np.repeat([1, 4], 400), groups=np.concatenate([narrow_groups, wide_groups])
    )
    low, high = calibration.bounds(np.ones(2), np.array([1, 4]))
    assert (high[1] - low[1]) > 5 * (high[0] - low[0])


def test_log_residuals_skip_non_positive_values():
    residuals = log_residuals([2.0, 0.0, 1.0], [1.0, 1.0, -1.0])
    assert residuals[0] == pytest.approx(np.log(2)) and np.isnan(residuals[1:]).all()


def test_group_residuals_never_come_from_a_model_that_saw_the_group():
    groups = np.repeat(["a", "b", "c", "d"], 5)
    truth = np.ones(20)
    seen = []

    def fit_predict(train_rows, test_rows):
        assert not set(groups[train_rows]) & set(groups[test_rows])
        seen.extend(test_rows)
        return np.full(len(test_rows), 2.0)

    residuals = leave_group_out_residuals(groups, fit_predict, truth)
    assert sorted(seen) == list(range(20)) and np.allclose(residuals, np.log(0.5))


def test_input_size_reads_the_number_in_the_dataset_name():
    assert input_size("224dataset") == 224 and np.isnan(input_size("mnist"))


def test_profet_scaler_recovers_a_quadratic_curve():
    rows = []
    for job, base in enumerate([1.0, 2.0, 4.0]):
        for batch in (16, 32, 64, 128, 256):
            rows.append(
                {
                    "dataset": "d",
                    "model": f"m{job}",
                    "optimizer": "sgd",
                    "batchsize": batch,
                    "batch_latency": base * (1 + 9 * ((batch - 16) / 240) ** 2),
                }
            )
    scaler = ProfetBatchScaler().fit(pd.DataFrame(rows))
    assert scaler.span_ == pytest.approx(10.0)
    expected = (1 + 9 * ((64 - 16) / 240) ** 2) / (1 + 9 * ((128 - 16) / 240) ** 2)
    assert np.exp(scaler.log_scale([128], [64]))[0] == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def paired_sizes():
    """Two instances, four models, batch sizes 16-128: latency grows linearly with the batch."""
    table = synthetic_profiles(
        instances=("slow.gpu", "fast.gpu"), batchsizes=(16, 32, 64, 128), datasets=("32data", "64data")
    )
    return pair_runs(table, "slow.gpu", "fast.gpu")


def test_size_what_if_learns_how_latency_grows_with_batch(paired_sizes):
    keys = paired_sizes.keys.reset_index(drop=True)
    train = (keys["model"] != "vgg").to_numpy()
    model = SizeWhatIf(max_iter=80).fit(
        keys[train], paired_sizes.anchor_profile[train], paired_sizes.target_profile[train]
    )
    held = np.flatnonzero(~train & (keys["batchsize"] == 32).to_numpy())
    anchor = paired_sizes.anchor_profile.iloc[held]
    batch, dataset = keys["batchsize"].to_numpy()[held], keys["dataset"].to_numpy()[held]
    # In the synthetic data every time is proportional to the batch: 32 -> 64 doubles it, 32 -> 16 halves it.
    assert np.exp(model.log_scale(anchor, batch, dataset, batch * 2, dataset)) == pytest.approx(2.0, rel=0.1)
    assert np.exp(model.log_scale(anchor, batch, dataset, batch // 2, dataset)) == pytest.approx(0.5, rel=0.1)
    assert np.all(model.log_scale(anchor, batch, dataset, batch, dataset) == 0)
    ops = model.op_log_scale(anchor, batch, dataset, batch * 2, dataset)
    conv = list(model.op_columns_).index("Device_Conv2D")
    assert np.exp(ops[:, conv]) == pytest.approx(2.0, rel=0.15)
    assert np.all(ops[:, list(model.op_columns_).index("Device_Unused")] == 0)  # never ran: stays 0


def test_second_profile_rows_prefer_double_then_half(paired_sizes):
    keys = paired_sizes.keys.reset_index(drop=True)
    chosen = second_profile_rows(keys)
    moved = dict(zip(chosen["batchsize"], chosen["second_batchsize"]))
    assert moved == {16: 32, 32: 64, 64: 128, 128: 64}
    every = second_profile_rows(keys, every=True)
    assert (every["batchsize"] != every["second_batchsize"]).all()
    assert len(every) == 3 * len(keys)
    assert (keys.loc[every["row"], "model"].to_numpy() == keys.loc[every["second_row"], "model"].to_numpy()).all()


def test_second_profile_latency_learns_the_speed_up(paired_sizes):
    keys = paired_sizes.keys.reset_index(drop=True)
    pairs = second_profile_rows(keys, every=True)
    anchor, target = (
        paired_sizes.anchor_profile.reset_index(drop=True),
        paired_sizes.target_profile.reset_index(drop=True),
    )
    model = SecondProfileLatency(max_iter=60).fit(
        anchor.iloc[pairs["row"]],
        anchor.iloc[pairs["second_row"]],
        target.iloc[pairs["row"]],
        pairs["batchsize"],
        pairs["second_batchsize"],
    )
    true_ratio = np.log(target["batch_latency"] / anchor["batch_latency"]).median()
    predicted = model.predict(
        anchor.iloc[pairs["row"]],
        anchor.iloc[pairs["second_row"]],
        target.iloc[pairs["row"]].drop(columns="batch_latency"),
        pairs["batchsize"],
        pairs["second_batchsize"],
    )
    assert np.median(predicted) == pytest.approx(true_ratio, abs=0.05)


def test_grouped_calibration_with_many_groups_stays_bounded_and_matches_pooled_noise():
    # 20,000 singleton groups: every residual is its own bias; the convolution is summarised, not 20,000 x 20,000.
    rng = np.random.default_rng(6)
    residuals = rng.normal(0.0, 0.1, 20_000)
    low, high = ConformalInterval().fit(residuals, groups=np.arange(20_000)).quantiles_
    assert low == pytest.approx(-0.128, abs=0.01) and high == pytest.approx(0.128, abs=0.01)
