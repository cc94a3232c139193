"""The measured steps the plan model is scored on, and the benchmark's hold-out: no group sees its own times."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks.distributed import NEUSIGHT_PUBLISHED, top5_contains_fastest
from profcast.distributed.fit import forecast_ms, held_out_forecasts
from profcast.distributed.ground_truth import neusight_steps, vtrain_steps
from profcast.distributed.plan import validate_plan
from tests.conftest import REPO
from tests.test_distributed import RAW, UNIT

SHARED = REPO.parent / "shared" / "data"
needs_vtrain = pytest.mark.skipif(not (SHARED / "vtrain").exists(), reason="vTrain data not in ../shared/data")
needs_neusight = pytest.mark.skipif(not (SHARED / "neusight").exists(), reason="NeuSight data not in ../shared/data")


@needs_vtrain
def test_every_vtrain_row_is_a_valid_plan_of_its_model():
    steps = vtrain_steps(SHARED)
    assert len(steps) == 1440
    for step in steps:
        validate_plan(step.plan, step.shape)  # raises on any row the checks would refuse
    assert len({step.shape.name for step in steps}) == 8  # hidden 1,024/2,048 x 12, 16, 20, 24 layers


@needs_neusight
def test_neusight_distributed_labels_are_the_published_cases():
    steps = neusight_steps(SHARED, distributed=True)
    keys = set()
    for step in steps:
        model, _, _, batch, split = step.config_id.split("/")[1].split("-", 4)
        keys.add((step.gpu, model, int(batch), split))
        assert step.plan.gpus == 4 and step.plan.precision == "fp32"
        assert step.plan.microbatches == 1  # DP splits the batch; TP and PP run it as one micro-batch
    assert keys == set(NEUSIGHT_PUBLISHED)
    single = neusight_steps(SHARED, distributed=False)
    assert single and all(step.plan.gpus == 1 for step in single)


def test_held_out_forecasts_never_see_their_own_group():
    rng = np.random.default_rng(1)
    rows = pd.DataFrame([{k: v * rng.uniform(0.5, 2.0) for k, v in RAW.items()} for _ in range(30)])
    groups = np.repeat(["a", "b", "c"], 10)
    measured = forecast_ms(rows, UNIT | {"gemm": 1.3, "memory": 0.7}) * rng.uniform(0.9, 1.1, size=30)
    first = held_out_forecasts(rows, measured, groups, UNIT, ("gemm", "memory"))
    changed = measured.copy()
    changed[groups == "a"] *= 1.5  # group a's own times change ...
    second = held_out_forecasts(rows, changed, groups, UNIT, ("gemm", "memory"))
    assert np.allclose(first[groups == "a"], second[groups == "a"])  # ... its forecasts do not
    assert not np.allclose(first[groups == "b"], second[groups == "b"])  # the others learn from a


def test_top5_check_finds_the_measured_fastest_among_the_forecast_fastest():
    table = pd.DataFrame(
        {
            "model": ["m"] * 7 + ["n"] * 2,
            "measured_ms": [10, 20, 30, 40, 50, 60, 70, 5, 6],
            "forecast_ms": [99, 1, 2, 3, 4, 5, 6, 9, 8],  # m's fastest forecast sixth; n has two plans
        }
    )
    assert top5_contains_fastest(table, ["model"]) == {"model=m": False, "model=n": True}


@pytest.mark.slow
@needs_vtrain
@needs_neusight
def test_the_benchmark_writes_every_record_and_meets_the_published_errors(tmp_path):
    from benchmarks.distributed import main

    out = tmp_path / "distributed.json"
    assert main(["--json", str(out), "--search-gpus", "64"]) == 0
    result = json.loads(out.read_text())
    fields = {"source", "config_id", "gpus", "tp", "pp", "dp", "measured_ms", "forecast_ms", "ape"}
    assert all(fields <= set(record) for record in result["records"])
    assert sum(r["source"] == "vtrain" for r in result["records"]) == 1440
    assert result["vtrain"]["held_out_mape"] < result["vtrain"]["published_vtrain_mape"]
    assert result["neusight"]["mean_ape"] < result["neusight"]["neusight_published_mean_ape"]
