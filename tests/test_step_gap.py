"""The step-level gap of the per-call model: measured step minus measured calls summed, per call (issue 30)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from profcast.ingest.device_figures import DeviceFigures
from profcast.regressors.call_costs import add_call_costs
from profcast.regressors.per_call import PerCallModel, roofline_us
from profcast.regressors.step_gap import gaps_per_call_us, median_gap_per_call_us, with_step_gap

RUN = {"model": "net", "mode": "train", "seq_len": 1}


def two_runs(gpu="g"):
    """Run 1: calls of 10 µs x1 and 10 µs x3 (40 µs, 4 calls); run 2: one call of 100 µs x2 (200 µs, 2 calls)."""
    calls = pd.DataFrame(
        [
            {"gpu": gpu, **RUN, "batchsize": 1, "time_us": 10.0, "repeat": 1},
            {"gpu": gpu, **RUN, "batchsize": 1, "time_us": 10.0, "repeat": 3},
            {"gpu": gpu, **RUN, "batchsize": 2, "time_us": 100.0, "repeat": 2},
        ]
    )
    steps = pd.DataFrame(
        [
            {"gpu": gpu, **RUN, "batchsize": 1, "e2e_us": 60.0},  # 20 µs over 4 calls: +5 per call
            {"gpu": gpu, **RUN, "batchsize": 2, "e2e_us": 180.0},  # 20 µs under 2 calls: -10 per call
            {"gpu": gpu, **RUN, "batchsize": 3, "e2e_us": 999.0},  # no calls: not a gap
        ]
    )
    return calls, steps


def test_gap_per_call_is_the_step_minus_the_calls_summed_over_the_calls():
    calls, steps = two_runs()
    gaps = gaps_per_call_us(calls, steps)
    assert gaps.xs(1, level="batchsize").tolist() == [5.0] and gaps.xs(2, level="batchsize").tolist() == [-10.0]
    assert median_gap_per_call_us(calls, steps) == pytest.approx(-2.5)
    assert median_gap_per_call_us(calls, steps.iloc[2:]) == 0.0


def test_the_gap_adds_per_call_and_never_halves_the_step():
    assert with_step_gap(np.array([100.0, 100.0]), np.array([10, 10]), -3.0).tolist() == [70.0, 70.0]
    assert with_step_gap(np.array([100.0]), np.array([40]), -3.0).tolist() == [50.0]  # -120 would go below half


def test_fitted_gap_shifts_each_step_forecast_by_gap_times_calls():
    devices = {name: DeviceFigures(name, tflops, bw, 16.0, 8.0, 80.0, 1500.0) for name, tflops, bw in
               (("slow", 10.0, 500.0), ("fast", 40.0, 2000.0))}  # fmt: skip
    rows = [{**RUN, "batchsize": size, "node": size, "kind": "add", "phase": "fw", "dtype": "float32", "repeat": 2,
             "input_shapes": ((size, size), (size, size)), "output_shape": (size, size)}
            for size in (256, 512, 1024, 2048)]  # fmt: skip
    base = add_call_costs(pd.DataFrame(rows))
    calls = pd.concat(
        [base.assign(gpu=g, time_us=roofline_us(base, d) * 2 + 2.0) for g, d in devices.items()], ignore_index=True
    )
    # every step 3 µs per call longer than its calls summed
    steps = calls.assign(e2e_us=calls["time_us"] * calls["repeat"] + 3.0 * calls["repeat"])
    with threadpool_limits(limits=1):
        with_gap = PerCallModel(max_iter=20).fit(calls, devices, steps)
        without = PerCallModel(max_iter=20, step_gap=False).fit(calls, devices, steps)
        no_steps = PerCallModel(max_iter=20).fit(calls, devices)
        anchor = calls[calls["gpu"] == "fast"]
        shifted = with_gap.predict_step_us(anchor, devices["fast"], devices["slow"])["predicted_us"]
        plain = without.predict_step_us(anchor, devices["fast"], devices["slow"])["predicted_us"]
    assert with_gap.call_gap_us_ == pytest.approx(3.0) and without.call_gap_us_ == 0.0 == no_steps.call_gap_us_
    np.testing.assert_allclose(shifted - plain, 3.0 * 2)  # one call a run, repeated twice
