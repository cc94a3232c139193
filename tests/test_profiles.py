"""Bad profile tables are refused with a message naming the file, column or value."""

import numpy as np
import pytest

from profcast.errors import ProfcastError
from profcast.ingest.tables import read_profile_table


def write(tmp_path, table, name="profiles.csv"):
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


def test_reads_csv_gzip_and_parquet_alike(tmp_path, profile_table):
    csv = read_profile_table(write(tmp_path, profile_table))
    gz = tmp_path / "profiles.csv.gz"
    profile_table.to_csv(gz, index=False)
    parquet = tmp_path / "profiles.parquet"
    profile_table.to_parquet(parquet)
    for other in (read_profile_table(gz), read_profile_table(parquet)):
        assert other.shape == csv.shape
        assert np.allclose(other["Device_Conv2D"], csv["Device_Conv2D"])
    assert csv["batchsize"].dtype.kind == "i"


def test_missing_key_column_is_named(tmp_path, profile_table):
    with pytest.raises(ProfcastError, match=r"profiles\.csv: missing key column\(s\) optimizer"):
        read_profile_table(write(tmp_path, profile_table.drop(columns="optimizer")))


@pytest.mark.parametrize(
    "bad_value, problem",
    [("fast", "is not a number"), (np.nan, r"is missing \(NaN\)"), (np.inf, "is infinite"), (-5.0, "is negative")],
)
def test_bad_op_values_name_column_and_row(tmp_path, profile_table, bad_value, problem):
    table = profile_table.astype({"Device_Relu": object})
    table.loc[3, "Device_Relu"] = bad_value
    with pytest.raises(ProfcastError, match=rf"column 'Device_Relu' line 5 value .* {problem}"):
        read_profile_table(write(tmp_path, table))


def test_empty_and_malformed_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ProfcastError, match="empty.csv: the file is empty"):
        read_profile_table(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("exp_name,instance_name,dataset,model,optimizer,batchsize,Device_A\n")
    with pytest.raises(ProfcastError, match="header.csv: holds no rows"):
        read_profile_table(header_only)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text('a,b\n1,2,3,4\n"unclosed\n')
    with pytest.raises(ProfcastError, match="ragged.csv"):
        read_profile_table(ragged)
    with pytest.raises(ProfcastError, match="no such file"):
        read_profile_table(tmp_path / "absent.csv")
    with pytest.raises(ProfcastError, match="unsupported file type"):
        read_profile_table(write(tmp_path, __import__("pandas").DataFrame({"a": [1]}), "table.xlsx"))


def test_no_op_columns_and_duplicate_runs(tmp_path, profile_table):
    keys_only = profile_table[["exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize"]]
    with pytest.raises(ProfcastError, match="no op columns"):
        read_profile_table(write(tmp_path, keys_only))
    doubled = __import__("pandas").concat([profile_table, profile_table.head(2)])
    with pytest.raises(ProfcastError, match="2 duplicate run"):
        read_profile_table(write(tmp_path, doubled))


def test_missing_batch_latency_is_allowed(tmp_path, profile_table):
    table = profile_table.copy()
    table.loc[0, "batch_latency"] = np.nan
    assert np.isnan(read_profile_table(write(tmp_path, table)).loc[0, "batch_latency"])
