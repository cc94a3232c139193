"""Real-data speed work keeps every answer: one pool probe per kind of fit, the transfer defaults."""

import os
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from profcast.pipeline import parallel
from profcast.pipeline.evaluation import cross_validate
from profcast.pipeline.features import AllColumns
from profcast.pipeline.splits import GroupSplit
from tests.test_speed import pairs, small_regressors  # noqa: F401 (pairs is a fixture)


def where_and_what(number: int) -> tuple[int, int]:
    """The process a task ran in, and its answer."""
    return os.getpid(), number * number


def test_a_second_call_of_a_kind_that_needed_a_pool_skips_the_probe(monkeypatch):
    monkeypatch.setattr(parallel, "WORTH_A_POOL_SECONDS", 0.0)  # every probe says: a pool pays
    monkeypatch.setattr(parallel, "_POOL_PAYS", set())
    tasks = [(number,) for number in range(4)]
    first = parallel.run_fits(where_and_what, tasks, n_jobs=2, kind="same fits")
    second = parallel.run_fits(where_and_what, tasks, n_jobs=2, kind="same fits")
    other = parallel.run_fits(where_and_what, tasks, n_jobs=2, kind="other fits")
    here = os.getpid()
    assert [pid == here for pid, _ in first] == [True, False, False, False]  # the probe ran here
    assert not any(pid == here for pid, _ in second)  # no probe: every task went to the pool
    assert other[0][0] == here  # another kind is probed afresh
    assert [answer for _, answer in first] == [answer for _, answer in second] == [0, 1, 4, 9]


def test_serial_calls_never_consult_or_fill_the_memo(monkeypatch):
    monkeypatch.setattr(parallel, "WORTH_A_POOL_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "_POOL_PAYS", set())
    answers = parallel.run_fits(where_and_what, [(2,), (3,)], n_jobs=1, kind="serial")
    assert [pid for pid, _ in answers] == [os.getpid()] * 2 and parallel._POOL_PAYS == set()


@pytest.mark.parametrize("kind", ["rf", "transfer"])
def test_later_targets_without_a_probe_give_the_same_predictions(pairs, monkeypatch, kind):  # noqa: F811
    monkeypatch.setattr(parallel, "WORTH_A_POOL_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "_POOL_PAYS", set())
    paired = pairs["fast.gpu"]
    folds = GroupSplit().folds(paired.keys)
    make_regressor = partial(clone, small_regressors()[kind])
    serial = cross_validate(paired, folds, make_regressor, AllColumns().select, n_jobs=1, refit=True)
    probed = cross_validate(paired, folds, make_regressor, AllColumns().select, n_jobs=2, refit=True)
    assert len(parallel._POOL_PAYS) == 1
    unprobed = cross_validate(paired, folds, make_regressor, AllColumns().select, n_jobs=2, refit=True)
    tolerance = {"check_exact": False, "rtol": 1e-12, "atol": 0} if kind == "rf" else {"check_exact": True}
    for held in (probed, unprobed):
        pd.testing.assert_frame_equal(held.predicted, serial.predicted, **tolerance)
        np.testing.assert_allclose(
            held.refit[0].predict(paired.anchor_profile),
            serial.refit[0].predict(paired.anchor_profile),
            rtol=1e-12 if kind == "rf" else 0,
            atol=0,
        )
