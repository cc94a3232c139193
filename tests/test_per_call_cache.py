"""The fitted per-call model of an unmeasured-GPU forecast is saved once and reused (issue 30, item 7)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from profcast.forecast.per_call_cache import cached_per_call_model, calls_fingerprint
from profcast.regressors.per_call import PerCallModel
from tests.test_per_call import figures, synthetic_calls


def test_the_model_is_fitted_once_then_read_back(tmp_path):
    calls_folder = tmp_path / "calls"
    calls_folder.mkdir()
    (calls_folder / "run.csv").write_text("one label file\n")
    devices = {d.name: d for d in (figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0))}
    calls = synthetic_calls(devices.values())
    fits = []

    def fit():
        fits.append(1)
        model = PerCallModel(max_iter=20).fit(calls, devices)
        return model, pd.Series([0.1, -0.2], index=pd.Index(["slow", "fast"], name="gpu"))

    with threadpool_limits(limits=1):
        first, first_errors = cached_per_call_model(calls_folder, "new", fit, cache_dir=tmp_path / "cache")
        again, again_errors = cached_per_call_model(calls_folder, "new", fit, cache_dir=tmp_path / "cache")
        assert len(fits) == 1
        anchor = calls[calls["gpu"] == "fast"]
        np.testing.assert_allclose(
            again.predict_calls(anchor, devices["fast"], devices["slow"]),
            first.predict_calls(anchor, devices["fast"], devices["slow"]),
        )
    pd.testing.assert_series_equal(again_errors, first_errors)
    # another GPU left out, or a changed label file, is another model
    cached_per_call_model(calls_folder, "other", fit, cache_dir=tmp_path / "cache")
    assert len(fits) == 2
    stat = (calls_folder / "run.csv").stat()
    os.utime(calls_folder / "run.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    cached_per_call_model(calls_folder, "new", fit, cache_dir=tmp_path / "cache")
    assert len(fits) == 3


def test_fingerprint_follows_files_target_and_parameters(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    base = calls_fingerprint(tmp_path, "h100", {})
    assert calls_fingerprint(tmp_path, "h100", {}) == base
    assert calls_fingerprint(tmp_path, "l4", {}) != base
    assert calls_fingerprint(tmp_path, "h100", {"max_iter": 100}) != base
    (tmp_path / "b.json").write_text("{}")
    assert calls_fingerprint(tmp_path, "h100", {}) != base


def test_an_op_the_fit_never_had_is_forecast_and_its_share_told():
    from profcast.forecast.new_gpu import profile_share

    devices = {d.name: d for d in (figures("slow", 10.0, 500.0), figures("fast", 40.0, 2000.0))}
    calls = synthetic_calls(devices.values())  # Linear and add only
    with threadpool_limits(limits=1):
        model = PerCallModel(max_iter=20).fit(calls, devices)
    anchor = calls[calls["gpu"] == "fast"].copy()
    anchor.loc[anchor["kind"] == "add", "kind"] = "mul"  # same class and shapes, a kind never fitted
    unseen = model.unseen_kinds(anchor)
    assert unseen.tolist() == (anchor["kind"] == "mul").tolist()
    forecast = model.predict_calls(anchor, devices["fast"], devices["slow"])
    assert np.all(np.isfinite(forecast[unseen])) and np.all(forecast[unseen] > 0)  # forecast, not dropped
    time = anchor["time_us"] * anchor["repeat"]
    assert profile_share(anchor, unseen) == 100 * time[unseen].sum() / time.sum()
