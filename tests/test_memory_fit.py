"""Does a job fit? The peak-memory carry measured from pairs, the fits column, and the ranking's split."""

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.jobmodel.memory_fit import (
    FITS,
    MEMORY_MARGIN,
    add_ranking_fit,
    device_memory_bytes,
    fit_columns,
    json_safe,
    peak_memory_carry,
)
from profcast.jobmodel.requests import checked_peak_memory
from profcast.schema import PEAK_MEMORY


def peaks_table(anchor_peaks: dict, target_peaks: dict) -> pd.DataFrame:
    rows = []
    for instance, peaks in (("a", anchor_peaks), ("t", target_peaks)):
        for model, peak in peaks.items():
            rows.append(
                {
                    "instance_name": instance,
                    "dataset": "32image",
                    "model": model,
                    "optimizer": "sgd",
                    "batchsize": 8,
                    PEAK_MEMORY: peak,
                }
            )
    return pd.DataFrame(rows)


def test_the_carry_is_the_median_ratio_and_its_error_holds_each_network_out():
    table = peaks_table({"x": 100.0, "y": 200.0, "z": 400.0}, {"x": 150.0, "y": 300.0, "z": 800.0})
    carry = peak_memory_carry(table, "a", "t")
    assert carry["ratio"] == 1.5 and carry["pairs"] == 3
    # x held out: ratio of y, z = median(1.5, 2.0) = 1.75 -> 175 vs 150: 16.67%; y: median(1.5, 2) -> 350 vs 300: 16.67%;
    # z: median(1.5, 1.5) = 1.5 -> 600 vs 800: 25%. Median 16.67%.
    assert carry["error_pct"] == pytest.approx(100 / 6)
    assert carry["as_is_error_pct"] == pytest.approx(100 * (1 - 1 / 1.5))  # 33.3%, 33.3%, 50%: median 33.3%


def test_no_shared_workload_or_no_peak_column_gives_no_carry():
    assert peak_memory_carry(peaks_table({"x": 100.0}, {"y": 100.0}), "a", "t") is None
    assert peak_memory_carry(peaks_table({"x": 1.0}, {"x": 1.0}).drop(columns=PEAK_MEMORY), "a", "t") is None


def test_fits_when_the_carried_peak_is_at_most_the_device_memory():
    memory = {
        "carry": {"big": {"ratio": 1.5}, "small": {"ratio": 1.5}, "unknown": None},
        "device_memory_bytes": {"big": 16e9, "small": 8e9, "unknown": None},
    }
    columns = fit_columns([6e9, 6e9, 6e9], ["big", "small", "unknown"], memory)
    assert list(columns[PEAK_MEMORY]) == [9e9, 9e9, 6e9]  # no measured carry: the anchor's peak as it is
    assert list(columns[MEMORY_MARGIN][:2]) == [7e9, -1e9] and np.isnan(columns[MEMORY_MARGIN][2])
    assert list(columns[FITS]) == [True, False, None]
    assert device_memory_bytes({"g6.xlarge": {"memory_gb": 24}}, "g6.xlarge") == 24e9
    assert device_memory_bytes({"g6.xlarge": {"memory_gb": None}}, "g6.xlarge") is None


def test_the_answer_carries_nulls_not_nan_and_the_ranking_puts_what_does_not_fit_apart():
    answer = pd.DataFrame({"target_instance": ["big", "small", "unknown"]})
    memory = {"carry": {}, "device_memory_bytes": {"big": 16e9, "small": 4e9}}
    for name, values in fit_columns([6e9, 6e9, 6e9], answer["target_instance"], memory).items():
        answer[name] = values
    safe = json_safe(answer)
    assert safe[MEMORY_MARGIN].tolist() == [10e9, -2e9, None]

    ranking = pd.DataFrame(
        {"instance": ["small", "big", "unknown", "anchor"], "source": ["predicted"] * 3 + ["anchor, measured"]}
    )
    shown = add_ranking_fit(ranking, safe)
    assert shown["does_not_fit"].tolist() == [True, False, False, False]
    assert shown["memory"].tolist() == ["NO: 1.86 GiB short", "fits, 9.31 GiB free", "-", "-"]


def test_a_bad_peak_in_a_request_is_named_in_one_line():
    with pytest.raises(
        ProfcastError, match="column 'peak_memory_bytes' row 1 value -3.0 is negative; peak_memory_bytes is"
    ):
        checked_peak_memory(pd.DataFrame({PEAK_MEMORY: [5.0, -3.0]}))
    assert np.isnan(checked_peak_memory(pd.DataFrame({"Host_mm": [1.0]}))).all()


def test_a_model_stores_memory_only_when_it_knows_some():
    from profcast.jobmodel.memory_fit import memory_record

    table = peaks_table({"x": 100.0, "y": 200.0}, {"x": 300.0, "y": 600.0})
    record = memory_record(table, "a", ["t"], {"t": {"memory_gb": 1}})
    assert record["carry"]["t"]["ratio"] == 3.0 and record["device_memory_bytes"] == {"t": 1e9}
    assert memory_record(table.drop(columns=PEAK_MEMORY), "a", ["t"], {}) is None


def test_predict_ranks_what_does_not_fit_apart_and_shows_no_memory_column_without_memory():
    from profcast.forecast.ranking import recommendation_table
    from profcast.forecast.report import format_table

    predicted = pd.DataFrame({"target_instance": ["b", "c"], "batch_latency": [0.1, 0.05]})
    plain = format_table(recommendation_table(predicted, "a", 0.2, 8, 1000, {}))
    assert "memory" not in plain.splitlines()[0] and "does not fit" not in plain

    predicted = predicted.assign(fits=[True, False], memory_margin_bytes=[1e9, -2e9])
    lines = format_table(recommendation_table(predicted, "a", 0.2, 8, 1000, {})).splitlines()
    ranked = [line.split()[1] for line in lines[1:] if line.strip()[0].isdigit()]
    assert ranked == ["b", "a", "c"]  # c is fastest but does not fit: last, under its own line
    assert lines[3].startswith("-- does not fit") and "NO: 1.86 GiB short" in lines[4]
