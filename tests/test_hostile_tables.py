"""Hostile tables: a header naming an op twice and a line too long for the CSV reader, in every reader.

Each case is refused in one line naming the file (and the column or line), by convert, predict's
profile reader and ``data=file``; with ``on_bad_file=skip`` a folder read leaves the bad file out
and keeps the good ones. Nothing is written when a command refuses.
"""

from __future__ import annotations

import csv
import gzip

import pytest

from profcast.cli import exit_code
from profcast.convert import main as convert
from profcast.datasets.sources import FileData
from profcast.errors import ProfcastError
from profcast.forecast.profile_input import read_anchor_profile
from profcast.ingest.csv_text import FIELD_LIMIT, repeated_names
from profcast.ingest.profile_files import read_profile_tree
from profcast.ingest.tables import read_profile_table, shown_value
from profcast.ingest.tfstats import REQUIRED_COLUMNS

KEYS = "exp_name,instance_name,dataset,model,optimizer,batchsize"
DUPLICATE_HEADER = f"{KEYS},batch_latency,Device_AddN,Device_Conv2D,Device_AddN\n"
GOOD_HEADER = f"{KEYS},batch_latency,Device_AddN,Device_Conv2D\n"
LONG = "A" * (FIELD_LIMIT + 10)  # one character past what Python's csv reader takes in a field


def table_rows(header: str) -> str:
    fields = header.count(",") - KEYS.count(",")
    values = ",".join(str(10 + i) for i in range(fields))
    return header + f"e,a,cifar10,resnet,sgd,32,{values}\n" + f"e,b,cifar10,resnet,sgd,32,{values}\n"


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("profcast: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_repeated_names_lists_each_name_said_twice_once_in_order():
    assert repeated_names(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]
    assert repeated_names(["a", " a"]) == ["a"]  # pandas strips nothing, but a person reads them as one
    assert repeated_names(["a", "b"]) == []


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_table_naming_an_op_twice_is_refused_naming_it_not_trained_as_a_phantom_op(tmp_path, suffix):
    path = tmp_path / f"catalogue{suffix}"
    text = table_rows(DUPLICATE_HEADER)
    path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    with pytest.raises(ProfcastError, match=r"catalogue\.csv(\.gz)?: the header names column 'Device_AddN' twice"):
        read_profile_table(path)
    with pytest.raises(ProfcastError, match="Device_AddN' twice"):
        FileData(str(path)).load()  # what train data=file reads


def test_convert_refuses_a_repeated_op_in_one_line_and_writes_nothing(tmp_path, capsys):
    path, out = tmp_path / "runs.csv", tmp_path / "out.csv"
    path.write_text(table_rows(DUPLICATE_HEADER))
    assert exit_code(convert, [str(path), "--out", str(out)]) == 2
    assert "'Device_AddN' twice" in one_line(capsys)
    assert not out.exists()


def test_predict_refuses_a_profile_row_with_a_repeated_op(tmp_path):
    path = tmp_path / "profile.csv"
    path.write_text("Device_AddN,Device_Conv2D,Device_AddN\n1,2,3\n")
    with pytest.raises(ProfcastError, match=r"profile\.csv: the header names column 'Device_AddN' twice"):
        read_anchor_profile(path, "a")


def test_a_folder_skips_a_table_with_a_repeated_op_and_keeps_the_good_one(tmp_path):
    (tmp_path / "bad.csv").write_text(table_rows(DUPLICATE_HEADER).replace(",resnet,", ",vgg,"))
    (tmp_path / "good.csv").write_text(table_rows(GOOD_HEADER))
    with pytest.raises(ProfcastError, match="twice"):
        read_profile_tree(tmp_path)
    tree = read_profile_tree(tmp_path, on_bad_file="skip")
    assert [why for _, why in tree.skipped] == [
        "the header names column 'Device_AddN' twice; keep one column per op (sum the two if both are real)"
    ]
    assert set(tree.profiles["model"]) == {"resnet"} and "Device_AddN.1" not in tree.profiles.columns


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(f"{KEYS},Device_{LONG}\ne,a,d,m,sgd,4,1\n", id="long-header"),
        pytest.param(LONG + "\n", id="one-long-line-of-text"),
        pytest.param(LONG + "," + LONG + "\n", id="two-long-fields"),
    ],
)
def test_a_first_line_too_long_for_the_csv_reader_is_one_line_in_every_reader(tmp_path, capsys, content):
    path = tmp_path / "long.csv"
    path.write_text(content)
    expected = r"long\.csv: line 1 holds a field longer than the CSV reader takes \(131,072 characters\)"
    with pytest.raises(ProfcastError, match=expected):
        read_anchor_profile(path, "a")  # predict's profile reader
    assert exit_code(convert, [str(path), "--out", str(tmp_path / "out.csv")]) == 2
    assert "holds a field longer than the CSV reader takes" in one_line(capsys)
    assert not (tmp_path / "out.csv").exists()


def test_a_long_line_deep_in_a_tf_stats_export_names_its_line(tmp_path):
    folder = tmp_path / "exp" / "inst"
    folder.mkdir(parents=True)
    with open(folder / "cifar10-resnet-sgd-32.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUIRED_COLUMNS)
        writer.writerow([1, "Device", "Conv2D", "conv", 3, 120.0, 40.0, 120.0, 40.0])
        writer.writerow([2, "Device", "AddN", LONG, 1, 5.0, 5.0, 5.0, 5.0])
    with pytest.raises(ProfcastError, match=r"cifar10-resnet-sgd-32\.csv: line 3 holds a field longer"):
        read_profile_tree(tmp_path)


def test_train_data_file_skips_a_too_long_file_with_on_bad_file_skip_and_keeps_the_rest(tmp_path):
    folder = tmp_path / "exp" / "a"
    folder.mkdir(parents=True)
    (folder / "cifar10-vgg-sgd-32.csv").write_text(LONG + "\n")
    (tmp_path / "good.csv").write_text(table_rows(GOOD_HEADER))
    with pytest.raises(ProfcastError, match="line 1 holds a field longer"):
        FileData(str(tmp_path)).load()
    source = FileData(str(tmp_path), on_bad_file="skip")
    profiles = source.load()
    assert set(profiles["model"]) == {"resnet"} and len(profiles) == 2
    assert [path.endswith("cifar10-vgg-sgd-32.csv") for path, _ in source.skipped] == [True]


def test_a_huge_value_is_quoted_cut_short_so_the_refusal_stays_one_readable_line(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(GOOD_HEADER + f'e,a,cifar10,resnet,sgd,32,0.1,"{"9" * 200_000}x",3\n')
    with pytest.raises(ProfcastError) as refused:
        read_profile_table(path)
    message = str(refused.value)
    assert "column 'Device_AddN' line 2" in message and "(200,003 characters)" in message
    assert len(message) < 300
    assert shown_value("short") == "'short'"
