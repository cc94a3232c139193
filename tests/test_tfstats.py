"""Reading raw TensorBoard tf_stats exports into the wide profile table."""

import json
import math

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.tfstats import read_tfstats_tree

HEADER = (
    '"Rank","Host/device","Type","Operation","#Occurrences","Total time (us)","Avg. time (us)",'
    '"Total self-time (us)","Avg. self-time (us)","Total self-time on Device (%)",'
    '"Cumulative total-self time on Device (%)","Total self-time on Host (%)",'
    '"Cumulative total-self time on Host (%)","Measured GFLOPs/Sec","Measured Memory BW (GBytes/Sec)",'
    '"Operational Intensity (FLOPs/Byte)","Bound by"'
)


def export_text(rows, header=HEADER):
    """A tf_stats CSV from (Host/device, Type, Operation, Total time) rows; other fields are filler."""
    lines = [header]
    for rank, (where, op_type, operation, total) in enumerate(rows, start=1):
        lines.append(f'{rank},"{where}","{op_type}","{operation}",2,{total},1,{total},1,0,0,0,0,0,0,0,"Unknown"')
    return "\n".join(lines) + "\n"


GOOD_ROWS = [
    ("Device", "Conv2D", "sequential/conv2d/Conv2D", "100.5"),
    ("Device", "Conv2D", "sequential/conv2d_1/Conv2D", "50.25"),
    ("Device", "Relu", "sequential/conv2d/Relu", "7"),
    ("Device", "IDLE", "IDLE", "1000"),
    ("Host", "IteratorGetNext", "IteratorGetNext", "30"),
    ("Host", "IDLE", "IDLE", "5000.125"),
    ("Host", "Relu", "cpu/Relu", "1.5"),  # same Type on the host is a separate column
]


def write_run(root, exp, instance, name, text=None, sidecar=None):
    folder = root / exp / instance
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(export_text(GOOD_ROWS) if text is None else text, encoding="utf-8")
    if sidecar is not None:
        content = sidecar if isinstance(sidecar, str) else json.dumps(sidecar)
        (folder / (name[: -len(".csv")] + ".latency.json")).write_text(content, encoding="utf-8")
    return path


def test_run_vector_is_the_sum_of_total_time_per_host_device_and_type(tmp_path):
    write_run(tmp_path, "exp1", "p3.2xlarge", "cifar10-vggsmall-sgd-64.csv")

    tree = read_tfstats_tree(tmp_path)

    assert tree.n_files == 1 and tree.skipped == [] and tree.duplicates == []
    row = tree.profiles.iloc[0]
    assert row["Device_Conv2D"] == pytest.approx(150.75)
    assert row["Device_Relu"] == 7 and row["Host_Relu"] == 1.5
    assert row["Device_IDLE"] == 1000 and row["Host_IDLE"] == pytest.approx(5000.125)
    assert row["Host_IteratorGetNext"] == 30
    assert (row["exp_name"], row["instance_name"], row["dataset"], row["model"], row["optimizer"]) == (
        "exp1",
        "p3.2xlarge",
        "cifar10",
        "vggsmall",
        "sgd",
    )
    assert row["batchsize"] == 64 and tree.profiles["batchsize"].dtype == "int64"


def test_columns_are_keys_latencies_then_sorted_ops_and_absent_ops_are_zero(tmp_path):
    write_run(tmp_path, "exp1", "p2.xlarge", "mnist-lenet5-sgd-16.csv", sidecar={"batch_latency": 0.01})
    write_run(
        tmp_path,
        "exp1",
        "p2.xlarge",
        "mnist-lenet5-sgd-32.csv",
        text=export_text([("Device", "AddN", "add_n", "3"), ("Host", "IDLE", "IDLE", "9")]),
    )

    profiles = read_tfstats_tree(tmp_path).profiles

    ops = [
        "Device_AddN",
        "Device_Conv2D",
        "Device_IDLE",
        "Device_Relu",
        "Host_IDLE",
        "Host_IteratorGetNext",
        "Host_Relu",
    ]
    assert (
        list(profiles.columns)
        == ["exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize", "batch_latency"] + ops
    )
    by_batch = profiles.set_index("batchsize")
    assert by_batch.loc[16, "Device_AddN"] == 0.0 and by_batch.loc[32, "Device_Conv2D"] == 0.0
    assert by_batch.loc[16, "batch_latency"] == 0.01 and math.isnan(by_batch.loc[32, "batch_latency"])


def test_latency_sidecar_gives_both_latency_columns(tmp_path):
    write_run(
        tmp_path, "exp2", "g4dn.xlarge", "imdb-lstm-adam-128.csv", sidecar={"batch_latency": 0.02, "epoch_latency": 3.9}
    )
    profiles = read_tfstats_tree(tmp_path).profiles
    assert profiles.loc[0, "batch_latency"] == 0.02 and profiles.loc[0, "epoch_latency"] == 3.9


def test_no_sidecar_means_no_latency_columns(tmp_path):
    write_run(tmp_path, "exp1", "p3.2xlarge", "mnist-lenet5-sgd-16.csv")
    columns = read_tfstats_tree(tmp_path).profiles.columns
    assert "batch_latency" not in columns and "epoch_latency" not in columns


def test_profet_raw_file_names_parse(tmp_path):
    name = "g3s.xlarge-g3s.xlarge-128dataset-AlexNet-SGD-16-20210202-1426402021_02_02_14_29_22.csv"
    write_run(tmp_path, "exp01", "g3s.xlarge", name, sidecar={"batch_latency": 0.05, "epoch_latency": 9.0})

    row = read_tfstats_tree(tmp_path).profiles.iloc[0]

    assert (
        row["exp_name"],
        row["instance_name"],
        row["dataset"],
        row["model"],
        row["optimizer"],
        row["batchsize"],
    ) == ("exp01", "g3s.xlarge", "128dataset", "AlexNet", "SGD", 16)
    assert row["batch_latency"] == 0.05


def test_newer_tensorboard_header_names_and_byte_order_mark_are_accepted(tmp_path):
    header = HEADER.replace('"Type"', '"Operation Type"').replace('"Operation"', '"Operation Name"')
    path = write_run(tmp_path, "exp1", "p3.2xlarge", "mnist-lenet5-sgd-16.csv", text=export_text(GOOD_ROWS, header))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_tfstats_tree(tmp_path).profiles.loc[0, "Device_Conv2D"] == pytest.approx(150.75)


def _rows_with_total(value):
    return export_text([("Device", "Conv2D", "conv", value), ("Host", "IDLE", "IDLE", "1")])


# (case id, file name under exp1/p3.2xlarge, csv text or None for a good one, sidecar, part of the message)
BAD_FILES = [
    ("missing-columns", "mnist-lenet5-sgd-16.csv", "Type,Operation,Time\nConv2D,conv,1\n", None, "missing column(s)"),
    ("empty-file", "mnist-lenet5-sgd-16.csv", "", None, "file is empty"),
    ("header-only", "mnist-lenet5-sgd-16.csv", HEADER + "\n", None, "no op rows"),
    ("non-numeric", "mnist-lenet5-sgd-16.csv", _rows_with_total("abc"), None, "'abc'"),
    ("negative", "mnist-lenet5-sgd-16.csv", _rows_with_total("-1.5"), None, "'-1.5'"),
    ("nan", "mnist-lenet5-sgd-16.csv", _rows_with_total("nan"), None, "'nan'"),
    ("inf", "mnist-lenet5-sgd-16.csv", _rows_with_total("inf"), None, "'inf'"),
    ("host-or-device", "mnist-lenet5-sgd-16.csv", export_text([("TPU", "Conv2D", "conv", "1")]), None, "'TPU'"),
    ("short-row", "mnist-lenet5-sgd-16.csv", HEADER + '\n1,"Device","Conv2D"\n', None, "has 3 fields"),
    ("name-fields", "mnist-lenet5-16.csv", None, None, "expected <dataset>-<model>-<optimizer>-<batchsize>.csv"),
    ("name-batchsize", "mnist-lenet5-sgd-big.csv", None, None, "batch size 'big'"),
    ("profet-instance", "p2.xlarge-p2.xlarge-32dataset-VGG11-SGD-16-20210202.csv", None, None, "instance folder"),
    ("sidecar-json", "mnist-lenet5-sgd-16.csv", None, "{batch_latency: 1", "not valid JSON"),
    ("sidecar-value", "mnist-lenet5-sgd-16.csv", None, {"batch_latency": -1}, "batch_latency is -1"),
    ("sidecar-key", "mnist-lenet5-sgd-16.csv", None, {"step_time": 1.0}, "unknown key(s) ['step_time']"),
    ("sidecar-list", "mnist-lenet5-sgd-16.csv", None, "[0.1, 2.0]", "not a non-empty JSON object"),
]


@pytest.mark.parametrize("name,text,sidecar,message", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_raises_a_one_line_error_naming_the_file(tmp_path, name, text, sidecar, message):
    path = write_run(tmp_path, "exp1", "p3.2xlarge", name, text=text, sidecar=sidecar)

    with pytest.raises(ProfcastError) as raised:
        read_tfstats_tree(tmp_path)

    assert str(path) in str(raised.value)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_file_at_the_wrong_depth_is_a_bad_file(tmp_path):
    write_run(tmp_path, "exp1", "p3.2xlarge", "mnist-lenet5-sgd-16.csv")
    stray = tmp_path / "exp1" / "mnist-lenet5-sgd-32.csv"
    stray.write_text(export_text(GOOD_ROWS))
    with pytest.raises(ProfcastError, match="expected <root>/<exp_name>/<instance_name>/<run>.csv"):
        read_tfstats_tree(tmp_path)


def test_skip_mode_reads_the_good_files_and_lists_every_bad_one(tmp_path):
    good = write_run(tmp_path, "exp1", "p3.2xlarge", "cifar10-vggsmall-sgd-64.csv")
    bad_paths = []
    for index, (_, name, text, sidecar, _) in enumerate(BAD_FILES):
        # One instance folder per case so every bad file has its own run keys.
        bad_paths.append(str(write_run(tmp_path, "exp1", f"bad{index}", name, text=text, sidecar=sidecar)))

    tree = read_tfstats_tree(tmp_path, on_bad_file="skip")

    assert tree.n_files == len(BAD_FILES) + 1
    assert len(tree.profiles) == 1 and tree.profiles.loc[0, "model"] == "vggsmall"
    assert sorted(path for path, _ in tree.skipped) == sorted(bad_paths)
    assert str(good) not in dict(tree.skipped)
    assert all(reason for _, reason in tree.skipped)


def test_duplicate_run_raises_naming_both_files(tmp_path):
    first = write_run(tmp_path, "exp1", "g3s.xlarge", "g3s.xlarge-g3s.xlarge-32dataset-VGG11-SGD-16-20210202-1.csv")
    second = write_run(tmp_path, "exp1", "g3s.xlarge", "g3s.xlarge-g3s.xlarge-32dataset-VGG11-SGD-16-20210203-2.csv")
    with pytest.raises(ProfcastError, match="duplicate run") as raised:
        read_tfstats_tree(tmp_path)
    assert str(first) in str(raised.value) and str(second) in str(raised.value)


def test_duplicate_run_in_skip_mode_keeps_the_first_and_reports_it(tmp_path):
    first = write_run(tmp_path, "exp1", "p3.2xlarge", "mnist-lenet5-sgd-16.csv")
    second = write_run(
        tmp_path,
        "exp1",
        "p3.2xlarge",
        "p3.2xlarge-p3.2xlarge-mnist-lenet5-sgd-16-20240101.csv",
        text=export_text([("Device", "Conv2D", "c", "1")]),
    )

    tree = read_tfstats_tree(tmp_path, on_bad_file="skip")

    # Files are read in sorted path order, so the own-named file comes first and is kept.
    assert len(tree.profiles) == 1 and tree.profiles.loc[0, "Device_Conv2D"] == pytest.approx(150.75)
    assert tree.duplicates == [(str(second), str(first))]


def test_missing_root_or_no_csv_is_an_error(tmp_path):
    with pytest.raises(ProfcastError, match="does not exist"):
        read_tfstats_tree(tmp_path / "nowhere")
    (tmp_path / "exp1").mkdir()
    (tmp_path / "exp1" / "notes.txt").write_text("no exports here")
    with pytest.raises(ProfcastError, match="no .csv tf_stats export"):
        read_tfstats_tree(tmp_path)


def test_skip_mode_with_nothing_readable_is_an_error(tmp_path):
    write_run(tmp_path, "exp1", "p3.2xlarge", "mnist-lenet5-sgd-16.csv", text="")
    with pytest.raises(ProfcastError, match="none of the 1 .csv files could be read.*file is empty"):
        read_tfstats_tree(tmp_path, on_bad_file="skip")


def test_unknown_on_bad_file_choice_is_an_error(tmp_path):
    with pytest.raises(ProfcastError, match=r"on_bad_file='ignore'.*\['raise', 'skip'\]"):
        read_tfstats_tree(tmp_path, on_bad_file="ignore")


def test_workload_from_a_bare_file_name():
    from profcast.ingest.tfstats import workload_from_file_name

    assert workload_from_file_name("cifar10-vggsmall-sgd-64.csv") == {
        "dataset": "cifar10",
        "model": "vggsmall",
        "optimizer": "sgd",
        "batchsize": 64,
    }
    profet = workload_from_file_name("g3s.xlarge-g3s.xlarge-128dataset-AlexNet-SGD-16-20210202-142640.csv")
    assert profet == {"dataset": "128dataset", "model": "AlexNet", "optimizer": "SGD", "batchsize": 16}
    assert workload_from_file_name("my_profile.csv") is None
    assert workload_from_file_name("a-b-c-0.csv") is None  # batch size must be positive
