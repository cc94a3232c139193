"""benchmarks.accuracy, latency_ceiling and error_structure: the CLIs run on a tiny synthetic table and write the documented records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import accuracy, error_structure, latency_ceiling
from profcast.cli import exit_code
from tests.conftest import synthetic_profiles


def test_cli_writes_documented_json(tmp_path, capsys):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu"), models=("lenet", "vgg", "resnet")).to_csv(table, index=False)
    out, markdown = tmp_path / "out.json", tmp_path / "tiny.md"
    code = exit_code(
        accuracy.main,
        # --jobs 1: the pairs in this process (two worker processes cost more than the fits; parallel pairs: below)
        [
            "--data",
            str(table),
            "--json",
            str(out),
            "--markdown",
            str(markdown),
            "--methods",
            "ratio,transfer",
            "--jobs",
            "1",
        ],
    )
    assert code == 0
    records = json.loads(out.read_text())
    assert {(r["anchor"], r["target"]) for r in records} == {("slow.gpu", "fast.gpu"), ("fast.gpu", "slow.gpu")}
    assert {r["method"] for r in records} == {
        "ratio",
        "transfer",
        "noise_floor",
        "transfer_2profiles",
        "whatif",
        "profet_scaler",
    }
    for record in records:
        assert tuple(record) == accuracy.RECORD_FIELDS
        assert record["n_test_rows"] > 0
    transfer = next(r for r in records if r["method"] == "transfer")
    assert transfer["batch_latency_mape"] is not None and transfer["device_total_mape"] is not None
    assert 0 <= transfer["interval_coverage"] <= 100 and transfer["interval_width"] > 0
    # The synthetic table has batch sizes 32 and 128: every what-if moves the batch by 2^2.
    assert {r["batch_ratio_log2"] for r in records if r["method"] in ("whatif", "profet_scaler")} == {2}
    assert all(r["batch_ratio_log2"] is None for r in records if r["method"] not in ("whatif", "profet_scaler"))
    assert "| transfer |" in markdown.read_text()
    assert "wall time" in capsys.readouterr().out


def test_profet_predicts_latency_only(tmp_path):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu"), models=("lenet", "vgg", "resnet")).to_csv(table, index=False)
    out = tmp_path / "out.json"
    assert (
        exit_code(
            accuracy.main,
            [
                "--data",
                str(table),
                "--json",
                str(out),
                "--markdown",
                str(tmp_path / "t.md"),
                "--pairs",
                "slow.gpu:fast.gpu",
                "--methods",
                "profet",
            ],
        )
        == 0
    )
    profet = next(r for r in json.loads(out.read_text()) if r["method"] == "profet")
    assert profet["batch_latency_mape"] is not None
    assert profet["cell_ape_median"] is None and profet["device_total_mape"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pairs", "slow.gpu:nowhere"], "unknown instance 'nowhere'"),
        (["--methods", "ratio,magic"], "unknown method(s) magic"),
    ],
)
def test_cli_reports_bad_options(tmp_path, capsys, argv, message):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu")).to_csv(table, index=False)
    assert exit_code(accuracy.main, ["--data", str(table), "--json", str(tmp_path / "o.json"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_data_file_is_a_clear_error(tmp_path, capsys):
    assert exit_code(accuracy.main, ["--data", str(tmp_path / "absent.csv.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_default_data_points_at_shared_profet():
    assert accuracy.DEFAULT_DATA.resolve().parts[-4:] == ("shared", "data", "profet", "profiles.csv.gz")


def test_parallel_pairs_give_the_sequential_records_in_order():
    profiles = synthetic_profiles(instances=("slow.gpu", "fast.gpu", "mid.gpu"), models=("lenet", "vgg", "resnet"))
    pairs = accuracy.parse_pairs("all", ["slow.gpu", "fast.gpu", "mid.gpu"])

    def without_timing(records):
        return [{k: v for k, v in record.items() if k != "fit_seconds"} for record in records]

    sequential = accuracy.run_benchmark(profiles, pairs, ["ratio"], log=lambda line: None, jobs=1)
    parallel = accuracy.run_benchmark(profiles, pairs, ["ratio"], log=lambda line: None, jobs=2)
    assert [(r["anchor"], r["target"]) for r in parallel][::2] == pairs  # noise floor + ratio per pair
    assert without_timing(parallel) == without_timing(sequential)


def test_latency_ceiling_reports_every_pair_with_mean_and_max(tmp_path, capsys):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu"), models=("lenet", "vgg", "resnet")).to_csv(table, index=False)
    markdown = tmp_path / "ceiling.md"
    assert exit_code(latency_ceiling.main, ["--data", str(table), "--markdown", str(markdown)]) == 0
    text = markdown.read_text()
    for row in ("slow.gpu -> fast.gpu", "fast.gpu -> slow.gpu", "| mean |", "| max |"):
        assert row in text
    pair_rows = [
        [float(cell) for cell in line.split("|")[2:-1]]
        for line in text.splitlines()
        if "->" in line and line.startswith("|")
    ]
    assert len(pair_rows) == 2
    for *per_leaf_size, best, one_speedup, _noise in pair_rows:
        assert len(per_leaf_size) == len(latency_ceiling.LEAF_SIZES)
        assert all(np.isfinite(value) and value >= 0 for value in per_leaf_size)
        assert best == min(per_leaf_size)
        assert np.isfinite(one_speedup) and one_speedup >= 0


def test_one_speedup_is_the_median_ratio_scored_on_the_same_runs():
    # ratios 2, 2, 4: the median 2 forecasts 2, 2, 2 against 2, 2, 4 -> errors 0, 0, 50%
    assert latency_ceiling.one_speedup_mape([1.0, 1.0, 1.0], [2.0, 2.0, 4.0]) == pytest.approx(50 / 3)
    assert latency_ceiling.one_speedup_mape([1.0, 3.0], [2.0, 6.0]) == pytest.approx(0.0)


def test_latency_ceiling_needs_batch_latency(tmp_path, capsys):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu")).drop(columns=["batch_latency"]).to_csv(table, index=False)
    assert exit_code(latency_ceiling.main, ["--data", str(table), "--markdown", str(tmp_path / "c.md")]) == 2
    assert "needs batch_latency" in capsys.readouterr().err


def test_error_structure_oracles_remove_exactly_their_groups_mean_error():
    keys = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 4, "batchsize": [16, 16, 32, 32] * 2, "dataset": ["32d"] * 8})
    per_model_bias = np.where(keys["model"] == "a", 0.2, -0.1)
    left = error_structure.oracle_mapes(per_model_bias, keys)
    assert left["no_oracle"] > 10 and left["per_model"] == pytest.approx(0.0, abs=1e-9)
    noise = np.array([0.1, -0.1, 0.05, -0.05, 0.1, -0.1, 0.05, -0.05])
    left = error_structure.oracle_mapes(per_model_bias + noise, keys)
    assert left["per_workload"] == pytest.approx(left["per_model_batch"])  # one dataset: the same groups
    assert left["per_model"] == pytest.approx(100 * np.mean(np.abs(np.exp(-noise) - 1)))


def test_error_structure_cli_reports_every_pair(tmp_path, capsys):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu"), models=("lenet", "vgg", "resnet")).to_csv(table, index=False)
    markdown = tmp_path / "structure.md"
    assert exit_code(error_structure.main, ["--data", str(table), "--markdown", str(markdown), "--jobs", "1"]) == 0
    text = markdown.read_text()
    for row in ("slow.gpu -> fast.gpu", "fast.gpu -> slow.gpu", "| mean |", "| max |", *error_structure.ORACLE_GROUPS):
        assert row in text
    assert "wall time" in capsys.readouterr().out


def test_error_structure_needs_batch_latency(tmp_path, capsys):
    table = tmp_path / "tiny.csv"
    synthetic_profiles(instances=("slow.gpu", "fast.gpu")).drop(columns=["batch_latency"]).to_csv(table, index=False)
    assert (
        exit_code(error_structure.main, ["--data", str(table), "--markdown", str(tmp_path / "s.md"), "--jobs", "1"])
        == 2
    )
    assert "needs batch_latency" in capsys.readouterr().err


def test_the_canonical_vocabulary_sums_op_columns_per_category_and_keeps_latencies(capsys):
    table = synthetic_profiles()

    mapped = accuracy.in_vocabulary(table, "canonical")

    assert accuracy.in_vocabulary(table, "native") is table
    assert "Device_conv_forward" in mapped and "Device_Conv2D" not in mapped
    pd.testing.assert_series_equal(mapped["batch_latency"], table["batch_latency"])
    device = [c for c in table if c.startswith("Device_")]
    np.testing.assert_allclose(
        mapped.filter(like="Device_").sum(axis=1), table[device].sum(axis=1)
    )  # time moved, none lost
    assert "vocabulary canonical" in capsys.readouterr().out
