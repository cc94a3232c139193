"""Telling profile files apart by content, reading one run, and reading mixed folders of runs."""

import gzip
import logging
import shutil

import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.ingest.profile_files import profile_kind, read_profile_file, read_profile_tree
from profcast.ingest.tables import validate_profiles
from profcast.ingest.tfstats import read_tfstats_export
from profcast.ingest.torch_trace import read_torch_trace
from profcast.schema import RUN_KEYS
from tests.test_tfstats import GOOD_ROWS, HEADER, export_text
from tests.test_torch_trace import CPU_TRACES, TEST_TRACES

XPROF_HEADER = HEADER.replace('"Type","Operation"', '"Operation Type","Operation Name"')
TRACE = CPU_TRACES[0]


def bad_files(folder):
    """One file of each bad kind, by name: what is wrong with it."""
    whole = TRACE.read_bytes()
    contents = {
        "unknown.csv": b"hello,world\n1,2\n",
        "truncated.json.gz": whole[: len(whole) // 2],
        "utf16.csv": export_text(GOOD_ROWS).encode("utf-16"),
        "no_trace_events.json": b'{"schemaVersion": 1, "events": []}',
        "empty.csv": b"",
        "latin1.csv": export_text(GOOD_ROWS).replace("IDLE", "IDL\xc9").encode("latin-1"),
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    return paths


def test_xprof_column_names_give_the_same_row_as_the_old_tf_stats_names(tmp_path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(export_text(GOOD_ROWS), encoding="utf-8")
    new.write_text(export_text(GOOD_ROWS, header=XPROF_HEADER), encoding="utf-8")
    assert "Operation Type" in new.read_text() and "Operation Type" not in old.read_text()

    assert profile_kind(new) == profile_kind(old) == "tf_stats"
    assert read_tfstats_export(new) == read_tfstats_export(old)
    assert read_profile_file(new) == read_profile_file(old) and read_profile_file(new)["Device_Conv2D"] > 0


def test_kind_comes_from_the_content_not_the_name(tmp_path):
    plain_trace = tmp_path / "trace.txt"
    plain_trace.write_bytes(gzip.decompress(TRACE.read_bytes()))
    export_named_json = tmp_path / "export.json"
    export_named_json.write_text(export_text(GOOD_ROWS), encoding="utf-8")
    table = validate_profiles(pd.DataFrame([{**dict(zip(RUN_KEYS, ["e", "i", "d", "m", "o", 8])), "Host_x": 1.0}]))
    table.to_csv(tmp_path / "table.dat", index=False)
    table.to_parquet(tmp_path / "table.bin")

    assert profile_kind(TRACE) == profile_kind(plain_trace) == "torch_trace"
    assert profile_kind(export_named_json) == "tf_stats"
    assert profile_kind(tmp_path / "table.dat") == profile_kind(tmp_path / "table.bin") == "table"
    assert read_profile_file(plain_trace) == read_torch_trace(TRACE)


def test_one_run_file_takes_its_workload_from_its_name_and_keys_override_it():
    row = read_profile_file(TRACE, keys={"instance_name": "laptop", "batchsize": 99})

    assert (row["dataset"], row["optimizer"], row["instance_name"], row["batchsize"]) == (
        "synthetic",
        "sgd",
        "laptop",
        99,
    )
    assert row["model"] in TRACE.name and row["batch_latency"] > 0


@pytest.mark.parametrize(
    "name, message",
    [
        ("unknown.csv", "no known kind"),
        ("truncated.json.gz", "truncated or corrupt gzip"),
        ("utf16.csv", "UTF-16"),
        ("no_trace_events.json", "traceEvents"),
        ("empty.csv", "empty"),
        ("latin1.csv", "not UTF-8"),
    ],
)
def test_a_bad_file_gets_a_one_line_error_naming_it(tmp_path, name, message):
    path = bad_files(tmp_path)[name]

    with pytest.raises(ProfcastError, match=message) as caught:
        read_profile_file(path)

    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def mixed_tree(root):
    """Two instances: traces on one, a tf_stats export (XProf names) with its sidecar and a trace on the other."""
    for trace in CPU_TRACES[:2]:
        target = root / "exp1" / "cpu1t" / trace.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(trace, target)
    other = root / "exp1" / "gpu"
    other.mkdir(parents=True)
    (other / "cifar10-vgg-sgd-64.csv").write_text(export_text(GOOD_ROWS, header=XPROF_HEADER), encoding="utf-8")
    (other / "cifar10-vgg-sgd-64.latency.json").write_text('{"batch_latency": 0.05}', encoding="utf-8")
    shutil.copy(CPU_TRACES[2], other / "cifar10-mlp-sgd-64.json.gz")
    return root


def test_a_mixed_folder_gives_one_row_per_run_with_keys_from_the_layout(tmp_path):
    tree = read_profile_tree(mixed_tree(tmp_path))

    profiles = tree.profiles.set_index(["instance_name", "model"])
    assert tree.n_files == 4 and tree.skipped == [] and len(profiles) == 4
    assert profiles.loc[("gpu", "vgg"), "batch_latency"] == 0.05  # from the export's sidecar
    assert profiles.loc[("gpu", "vgg"), "Device_Conv2D"] > 0 and profiles.loc[("gpu", "mlp"), "Device_Conv2D"] == 0
    assert profiles.loc[("gpu", "mlp"), "batch_latency"] == pytest.approx(
        read_torch_trace(CPU_TRACES[2])["batch_latency"]
    )
    assert validate_profiles(tree.profiles).equals(tree.profiles)


def test_the_committed_traces_read_as_a_table_of_two_instances(tmp_path):
    tree = read_profile_tree(TEST_TRACES / "runs")

    assert len(tree.profiles) == len(CPU_TRACES) and set(tree.profiles["instance_name"]) == {"cpu1t", "cpu2t"}
    assert (tree.profiles["batch_latency"] > 0).all()


def test_bad_files_in_a_folder_raise_or_are_skipped_and_counted(tmp_path, caplog):
    root = mixed_tree(tmp_path)
    bad = bad_files(root / "exp1" / "cpu1t")

    with pytest.raises(ProfcastError) as caught:
        read_profile_tree(root)
    assert any(str(path) in str(caught.value) for path in bad.values()) and "\n" not in str(caught.value)

    with caplog.at_level(logging.WARNING):
        tree = read_profile_tree(root, on_bad_file="skip")
    assert len(tree.profiles) == 4 and tree.n_files == 4 + len(bad)
    assert sorted(path for path, _ in tree.skipped) == sorted(str(p) for p in bad.values())
    assert all(str(path) in caplog.text for path in bad.values())


def test_the_same_run_twice_is_a_duplicate(tmp_path):
    root = mixed_tree(tmp_path)
    shutil.copy(CPU_TRACES[0], root / "exp1" / "cpu1t" / (CPU_TRACES[0].name.split(".")[0] + ".json.gz"))

    with pytest.raises(ProfcastError, match="duplicate run"):
        read_profile_tree(root)
    tree = read_profile_tree(root, on_bad_file="skip")
    assert len(tree.profiles) == 4 and len(tree.duplicates) == 1


def test_a_wide_table_in_a_folder_brings_its_own_rows_and_keys(tmp_path):
    root = mixed_tree(tmp_path / "tree")
    table = validate_profiles(
        pd.DataFrame([{**dict(zip(RUN_KEYS, ["exp9", "tpu", "d", "m", "o", 8])), "Host_IDLE": 5.0}])
    )
    table.to_csv(root / "extra.csv", index=False)  # anywhere in the tree: its keys are its own
    with_gap = table.assign(exp_name="exp10", Host_IDLE=float("nan"))
    with_gap.to_csv(tmp_path / "gap.csv", index=False)

    profiles = read_profile_tree(root).profiles

    assert len(profiles) == 5 and profiles.set_index("instance_name").loc["tpu", "Host_IDLE"] == 5.0
    with pytest.raises(ProfcastError, match="Host_IDLE"):  # an empty op cell is an error, as for data.path
        read_profile_file(tmp_path / "gap.csv")
