"""The convert CLI: mixed profile files to one wide table, written whole or not at all; it trains end to end."""

import os

import pandas as pd
import pytest

from profcast.cli import exit_code
from profcast.convert import main
from profcast.ingest.tables import read_profile_table, validate_profiles
from profcast.ingest.torch_trace import read_torch_trace
from tests.conftest import REPO
from tests.test_profile_files import bad_files, mixed_tree
from tests.test_torch_trace import CPU_TRACES, GPU_TRACES, TEST_TRACES

RUNS = TEST_TRACES / "runs"


@pytest.fixture
def convert(run_cli):
    """convert(*args): run the CLI in a child process: exit code, stdout, stderr."""
    return lambda *args: outcome(
        run_cli(
            ["-m", "profcast.convert", *map(str, args)],
            cwd=REPO,
            timeout=120,
        )
    )


def outcome(done):
    """A finished command's exit code, stdout and stderr."""
    return done.returncode, done.stdout, done.stderr


def test_folders_and_single_files_become_one_table_with_one_row_per_run(tmp_path, capsys):
    out = tmp_path / "table.csv.gz"
    single = tmp_path / "my-trace.json.gz"  # a name without the workload: keys come from the options
    single.write_bytes(CPU_TRACES[0].read_bytes())

    code = exit_code(main, [str(RUNS), str(single), "--out", str(out)] + [])
    assert code == 2 and "--exp NAME" in capsys.readouterr().err and not out.exists()

    tree = mixed_tree(tmp_path / "tree")  # repeats two of RUNS' runs
    assert (
        exit_code(main, [str(RUNS), str(tree), "--out", str(out)]) == 2 and "duplicate run" in capsys.readouterr().err
    )
    code = exit_code(main, [str(RUNS), str(tree), "--out", str(out), "--on-bad-file", "skip"])
    printed = capsys.readouterr().out
    assert code == 0 and "converted 14 runs from 16 files" in printed and "2 duplicate runs" in printed
    table = read_profile_table(out)
    assert len(table) == 14 and table.columns[:6].tolist() == [
        "exp_name",
        "instance_name",
        "dataset",
        "model",
        "optimizer",
        "batchsize",
    ]

    keys = [
        "--exp",
        "mine",
        "--instance",
        "laptop",
        "--dataset",
        "cifar10",
        "--model",
        "cnn",
        "--optimizer",
        "adam",
        "--batchsize",
        "32",
    ]
    assert exit_code(main, [str(single), "--out", str(out)] + keys) == 0
    row = read_profile_table(out).iloc[0]
    assert (row["instance_name"], row["model"], row["batchsize"]) == ("laptop", "cnn", 32)
    assert row["batch_latency"] == pytest.approx(read_torch_trace(CPU_TRACES[0])["batch_latency"])


@pytest.mark.skipif(not GPU_TRACES.exists(), reason="../shared GPU traces absent")
def test_cuda_rocm_and_cpu_traces_convert_together(tmp_path, capsys):
    out = tmp_path / "table.parquet"
    for trace, instance in (("a100_alexnet", "a100"), ("mi250_minitoy_train", "mi250")):
        folder = tmp_path / "tree" / "exp1" / instance
        folder.mkdir(parents=True)
        (folder / f"imagenet-{instance}model-sgd-64.json.gz").write_bytes(
            (GPU_TRACES / f"{trace}.json.gz").read_bytes()
        )

    assert exit_code(main, [str(tmp_path / "tree"), str(RUNS), "--out", str(out)]) == 0

    table = pd.read_parquet(out).set_index("instance_name")
    assert set(table.index) == {"a100", "mi250", "cpu1t", "cpu2t"}
    assert table.loc["a100", "Host_cudaLaunchKernel"] > 0 and table.loc["mi250", "Host_hipLaunchKernel"] > 0
    assert (table.loc[["cpu1t", "cpu2t"], "Device_IDLE"] == 0).all()  # no device in a CPU-only run


@pytest.mark.parametrize("name", ["unknown.csv", "truncated.json.gz", "utf16.csv", "no_trace_events.json", "empty.csv"])
def test_a_bad_file_stops_with_one_line_exit_2_and_no_output(convert, tmp_path, name):
    bad = bad_files(tmp_path)[name]
    out = tmp_path / "table.csv"

    code, _, err = convert(RUNS, bad, "--out", out)

    assert code == 2 and err.startswith(f"profcast: error: {bad}: ") and err.count("\n") == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_skip_mode_counts_bad_files_and_keeps_the_rest(convert, tmp_path):
    root = mixed_tree(tmp_path / "tree")
    bad = bad_files(root / "exp1" / "gpu")
    out = tmp_path / "table.csv"
    out.write_text("old table\n")

    code, printed, err = convert(root, "--out", out, "--on-bad-file", "skip")

    assert code == 0 and f"skipped {len(bad)} bad files" in printed
    assert all(str(path) in err for path in bad.values())  # one warning per skipped file
    assert len(read_profile_table(out)) == 4


def test_a_failed_conversion_leaves_an_existing_table_untouched(convert, tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("old table\n")
    bad = bad_files(tmp_path)["unknown.csv"]

    code, _, _ = convert(RUNS, bad, "--out", out)

    assert code == 2 and out.read_text() == "old table\n"


@pytest.mark.slow
def test_a_table_converted_from_traces_trains_end_to_end(run_cli, convert, tmp_path, tracking_uri):
    table = tmp_path / "table.csv"
    assert convert(RUNS, "--out", table)[0] == 0
    validate_profiles(pd.read_csv(table))

    done = run_cli(
        [
            "-m",
            "profcast.train",
            "data=file",
            f"data.path={table}",
            "anchor=cpu1t",
            "regressor=ratio",
            f"tracking_uri={tracking_uri}",
        ],
        cwd=REPO,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "target cpu2t" in done.stderr + done.stdout
