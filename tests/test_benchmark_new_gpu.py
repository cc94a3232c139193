"""benchmarks.new_gpu's bookkeeping: intervals from the other GPUs' errors, per-pair winner against transfer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.new_gpu import add_intervals, transfer_comparison, workload_name
from benchmarks.pair_ratio import family_comparison, median_ratio_records
from profcast.regressors.per_call import interval_factors


def record(target, workload, measured, predicted, method="per_call", protocol="logo", anchor="x", mode="train"):
    return {"method": method, "protocol": protocol, "anchor": anchor, "target": target, "model": workload,
            "workload": workload, "mode": mode, "batchsize": 1, "measured_us": measured, "predicted_us": predicted,
            "e2e_mape": abs(predicted / measured - 1) * 100}  # fmt: skip


def test_interval_factors_apply_to_per_call_logo_forecasts_only():
    records = pd.DataFrame(
        [
            record("a", "w1", 100.0, 100.0),
            record("b", "w1", 200.0, 50.0),
            record("a", "w1", 100.0, 90.0, method="roofline"),
            record("a", "w1", 100.0, 80.0, protocol="lomo"),
        ]
    )
    out = add_intervals(records, {"a": (0.5, 2.0), "b": (0.8, 1.1)})
    assert out.iloc[0][["lower_us", "upper_us"]].tolist() == [50.0, 200.0]
    assert out.iloc[1][["lower_us", "upper_us"]].tolist() == pytest.approx([40.0, 55.0])
    assert out.iloc[2:][["lower_us", "upper_us"]].isna().all().all()


def test_interval_factors_are_the_central_quantiles_of_the_log_errors():
    errors = np.log(np.arange(1, 12, dtype=float))  # 1 .. 11: 10th percentile 2, 90th 10
    assert interval_factors(errors) == pytest.approx((2.0, 10.0))


def test_transfer_comparison_names_the_better_method_per_pair(tmp_path):
    records = pd.DataFrame(
        [
            record("t", "net", 100.0, 110.0, protocol="lomo", anchor="a1"),  # 10%
            record("t", "net", 100.0, 130.0, protocol="lomo", anchor="a2"),  # 30%
        ]
    )
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        [
            {
                "anchor": "a1",
                "target": "t",
                "method": "transfer",
                "model": "net",
                "optimizer": "train",
                "batchsize": 1,
                "measured_s": 1.0,
                "predicted_s": 1.2,
            },  # 20%
            {
                "anchor": "a2",
                "target": "t",
                "method": "transfer",
                "model": "net",
                "optimizer": "train",
                "batchsize": 1,
                "measured_s": 1.0,
                "predicted_s": 1.05,
            },  # 5%
        ]  # fmt: skip
    ).to_csv(rows, index=False)
    table = transfer_comparison(records, rows).set_index("anchor")
    assert table.loc["a1", "better"] == "per_call" and table.loc["a2", "better"] == "transfer"
    assert table.loc["all", "per_call_mape"] == pytest.approx(20.0)
    assert table.loc["all", "transfer_mape"] == pytest.approx(12.5)
    assert transfer_comparison(records, tmp_path / "absent.csv") is None


def test_workload_name_is_the_label_stem():
    assert (
        workload_name({"model": "gpt2_large", "mode": "train", "seq_len": 1024, "batchsize": 4})
        == "gpt2_large-train-1024-4"
    )


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    from benchmarks.new_gpu import main
    from profcast.cli import exit_code

    assert exit_code(main, ["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "out.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]
    assert not (tmp_path / "out.md").exists()


def test_median_ratio_scales_the_anchors_step_by_the_other_families_median_ratio():
    keys = {"mode": "train", "seq_len": 512}
    steps = pd.DataFrame(
        [
            {"gpu": "a", "model": "left_out", "batchsize": 1, "e2e_us": 100.0, **keys},
            {"gpu": "t", "model": "left_out", "batchsize": 1, "e2e_us": 250.0, **keys},
            # other families: target/anchor ratios 2, 3 and 10 -> median 3 (the left-out family's own 2.5 unread)
            {"gpu": "a", "model": "f1", "batchsize": 1, "e2e_us": 10.0, **keys},
            {"gpu": "t", "model": "f1", "batchsize": 1, "e2e_us": 20.0, **keys},
            {"gpu": "a", "model": "f2", "batchsize": 1, "e2e_us": 10.0, **keys},
            {"gpu": "t", "model": "f2", "batchsize": 1, "e2e_us": 30.0, **keys},
            {"gpu": "a", "model": "f3", "batchsize": 1, "e2e_us": 1.0, **keys},
            {"gpu": "t", "model": "f3", "batchsize": 1, "e2e_us": 10.0, **keys},
            # an inference workload is not the same mode: its ratio 100 is not read
            {"gpu": "a", "model": "f4", "batchsize": 1, "e2e_us": 1.0, "mode": "inf", "seq_len": 512},
            {"gpu": "t", "model": "f4", "batchsize": 1, "e2e_us": 100.0, "mode": "inf", "seq_len": 512},
        ]
    )
    (only,) = median_ratio_records(steps, "t", "left_out")
    assert (only["anchor"], only["target"], only["method"]) == ("a", "t", "median_ratio")
    assert only["predicted_us"] == pytest.approx(300.0) and only["measured_us"] == 250.0
    assert only["e2e_mape"] == pytest.approx(20.0)
    assert median_ratio_records(steps[steps["model"].isin(["left_out", "f4"])], "t", "left_out") == []


def test_family_comparison_pairs_the_same_forecasts_and_names_the_better():
    records = pd.DataFrame(
        [
            record("t", "w1", 100.0, 110.0, protocol="logo+lomo", anchor="a1"),  # per_call 10%
            record("t", "w1", 100.0, 130.0, protocol="logo+lomo", anchor="a1", method="median_ratio"),  # 30%
            record("t", "w1", 100.0, 150.0, protocol="logo+lomo", anchor="a2"),  # 50%: no baseline beside it
            record("u", "w1", 100.0, 80.0, protocol="logo+lomo", anchor="a1"),  # 20%
            record("u", "w1", 100.0, 95.0, protocol="logo+lomo", anchor="a1", method="median_ratio"),  # 5%
            record("t", "w1", 100.0, 100.0, protocol="logo", anchor="a1"),  # another protocol: not read
        ]
    )
    table = family_comparison(records).set_index("target")
    assert table.loc["t", ["records", "per_call_mape", "median_ratio_mape", "better"]].tolist() == [
        1,
        10.0,
        30.0,
        "per_call",
    ]
    assert table.loc["u", "better"] == "median_ratio"
    assert table.loc["all", ["records", "per_call_mape", "median_ratio_mape"]].tolist() == [2, 15.0, 17.5]
