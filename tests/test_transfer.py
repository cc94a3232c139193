"""TransferRegressor: sklearn conventions, skops round trip, structural zeros, column handling, ratios."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from profcast.regressors.transfer import TransferRegressor, time_kinds

# Known target/anchor ratio of each op in the synthetic pair below.
TRUE_RATIOS = {"Device_Conv2D": 0.25, "Device_Relu": 0.5, "Device_MatMul": 0.4, "Host_IDLE": 1.5}
SMALL = dict(max_iter=60, max_leaf_nodes=15, min_samples_leaf=5)  # fast and enough for the synthetic data


def synthetic_pair(n_runs: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anchor and target profiles where each op's target time is its anchor time x a fixed ratio.

    Device_MatMul runs in half the runs only (zeros elsewhere on both sides).
    """
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 1.0, n_runs)
    anchor = pd.DataFrame(
        {
            "Device_Conv2D": 1000 * scale * rng.lognormal(0, 0.2, n_runs),
            "Device_Relu": 200 * scale * rng.lognormal(0, 0.2, n_runs),
            "Device_MatMul": np.where(np.arange(n_runs) % 2 == 0, 300 * scale, 0.0),
            "Host_IDLE": 5000 * scale * rng.lognormal(0, 0.2, n_runs),
        }
    )
    target = pd.DataFrame({op: anchor[op] * ratio * rng.normal(1.0, 0.01, n_runs) for op, ratio in TRUE_RATIOS.items()})
    anchor["batch_latency"] = anchor.sum(axis=1) * 1e-6
    target["batch_latency"] = anchor["batch_latency"] * 0.3 * rng.normal(1.0, 0.01, n_runs)
    return anchor, target


@pytest.fixture(scope="module")
def fitted():
    anchor, target = synthetic_pair()
    return TransferRegressor(**SMALL).fit(anchor, target), anchor, target


def test_follows_estimator_conventions():
    model = TransferRegressor(max_iter=7)
    assert model.get_params()["max_iter"] == 7
    assert clone(model).get_params() == model.get_params()
    anchor, target = synthetic_pair(40)
    with pytest.raises(NotFittedError):
        model.predict(anchor)
    assert model.fit(anchor, target) is model
    assert not hasattr(clone(model), "ratio_model_")  # clone drops learned state
    with pytest.raises(ValueError, match="'max_iter' parameter of TransferRegressor"):
        TransferRegressor(max_iter=0).fit(anchor, target)


def test_output_columns_are_ops_then_batch_latency(fitted):
    model, anchor, _ = fitted
    assert model.output_columns_ == list(TRUE_RATIOS) + ["batch_latency"]
    assert model.predict(anchor).shape == (len(anchor), len(TRUE_RATIOS) + 1)


def test_recovers_known_ratios(fitted):
    model, _, _ = fitted
    anchor, target = synthetic_pair(60, seed=1)  # fresh runs
    predicted = pd.DataFrame(model.predict(anchor), columns=model.output_columns_)
    for op, ratio in TRUE_RATIOS.items():
        ran = anchor[op] > 0
        learned = np.median(predicted.loc[ran, op] / anchor.loc[ran, op])
        assert learned == pytest.approx(ratio, rel=0.05), op
    latency_error = np.abs(predicted["batch_latency"] / target["batch_latency"] - 1)
    assert np.median(latency_error) < 0.05


def test_op_absent_on_anchor_predicts_exactly_zero(fitted):
    model, anchor, _ = fitted
    predicted = pd.DataFrame(model.predict(anchor), columns=model.output_columns_)
    assert (predicted.loc[anchor["Device_MatMul"] == 0, "Device_MatMul"] == 0.0).all()
    assert (predicted.loc[anchor["Device_MatMul"] > 0, "Device_MatMul"] > 0.0).all()


def test_missing_columns_count_as_zero(fitted):
    model, anchor, _ = fitted
    without = anchor.drop(columns=["Device_MatMul"])
    zeroed = anchor.assign(Device_MatMul=0.0)
    np.testing.assert_allclose(model.predict(without), model.predict(zeroed))


def test_unseen_columns_are_ignored_and_reported(fitted):
    model, anchor, _ = fitted
    extended = anchor.assign(Device_NewOp=123.0)
    assert model.ignored_columns(extended) == ["Device_NewOp"]
    with pytest.warns(UserWarning, match="Device_NewOp"):
        predicted = model.predict(extended)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known profile predicts without warning
        np.testing.assert_allclose(predicted, model.predict(anchor))


def test_latency_predicted_without_anchor_latency(fitted):
    model, anchor, target = fitted
    predicted = model.predict(anchor.drop(columns=["batch_latency"]))
    latency = predicted[:, model.output_columns_.index("batch_latency")]
    assert np.all(np.isfinite(latency)) and np.all(latency > 0)
    assert np.median(np.abs(latency / target["batch_latency"] - 1)) < 0.25


def test_no_latency_output_when_target_has_none():
    anchor, target = synthetic_pair(40)
    model = TransferRegressor(**SMALL).fit(anchor, target.drop(columns=["batch_latency"]))
    assert model.output_columns_ == list(TRUE_RATIOS)
    assert model.predict(anchor).shape == (len(anchor), len(TRUE_RATIOS))


def test_skops_round_trip_predicts_identically(fitted):
    model, anchor, _ = fitted
    blob = skops.io.dumps(model)
    untrusted = skops.io.get_untrusted_types(data=blob)
    # HistGradientBoosting's own internals (incl. a functools.partial) plus our class; nothing else
    assert all(
        name.startswith(("sklearn.", "profcast.regressors.transfer.")) or name == "functools.partial"
        for name in untrusted
    ), untrusted
    loaded = skops.io.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict(anchor), model.predict(anchor))


def test_time_kinds_split_busy_idle_and_host_time():
    anchor = pd.DataFrame({"Device_Conv2D": [2.0], "Device_IDLE": [1.0], "Host_GatherV2": [3.0], "Host_IDLE": [4.0]})
    kinds = {
        name: [c for c, on in zip(anchor.columns, mask) if on]
        for name, mask in time_kinds(list(anchor.columns)).items()
    }
    assert kinds == {
        "busy": ["Device_Conv2D"],
        "device_idle": ["Device_IDLE"],
        "other": ["Host_GatherV2"],
        "other_idle": ["Host_IDLE"],
    }
    assert time_kinds(["conv", "relu", "idle"])["busy"].tolist() == [True, True, False]  # no Device_/Host_ names


def test_latency_scales_with_how_fast_the_target_runs():
    """Two targets that differ only in how fast the busy ops run (2x): predicted latencies differ 2x."""
    anchor, target = synthetic_pair(200, seed=2)
    slower = target.assign(**{op: target[op] * 2 for op in ("Device_Conv2D", "Device_Relu", "Device_MatMul")})
    slower["batch_latency"] = target["batch_latency"] * 2
    fast_model = TransferRegressor(**SMALL).fit(anchor, target)
    slow_model = TransferRegressor(**SMALL).fit(anchor, slower)
    fresh, _ = synthetic_pair(60, seed=3)
    column = fast_model.output_columns_.index("batch_latency")
    ratio = slow_model.predict(fresh)[:, column] / fast_model.predict(fresh)[:, column]
    assert np.median(ratio) == pytest.approx(2.0, rel=0.05)


def test_a_leaf_minimum_too_big_for_the_table_still_learns_per_op_ratios():
    """40 runs give 150 cells: 100 per leaf, taken as set, would forbid any split on the op identity."""
    anchor, target = synthetic_pair(40, seed=4)
    model = TransferRegressor(max_iter=60, min_samples_leaf=100).fit(anchor, target)
    fresh, _ = synthetic_pair(30, seed=5)
    predicted = pd.DataFrame(model.predict(fresh), columns=model.output_columns_)
    for op, ratio in TRUE_RATIOS.items():
        ran = fresh[op] > 0
        assert np.median(predicted.loc[ran, op] / fresh.loc[ran, op]) == pytest.approx(ratio, rel=0.1), op
