"""Names that reach folders and spreadsheets are checked where they enter, and every CSV cell profcast
writes is safe to open in a spreadsheet (docs/reliability.md, "Names and CSV cells")."""

import io

import numpy as np
import pandas as pd
import pytest

from profcast.cli import exit_code
from profcast.collect.__main__ import main as collect_main
from profcast.convert import main as convert_main
from profcast.csv_cells import FORMULA_STARTS, neutralised, safe_cell, to_safe_csv
from profcast.errors import ProfcastError
from profcast.ingest.tables import validate_profiles
from profcast.names import check_name, is_safe_name
from profcast.pipeline.pairing import resolve_targets
from profcast.predict import main as predict_main
from profcast.web.app import ranking_csv
from tests.test_torch_trace import CPU_TRACES

HOSTILE_NAMES = [
    '=HYPERLINK("http://attacker.example","click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "../../etc",
    "g4dn.xlarge/../x",
    "a" * 101,
    "g3s.xlarge\0",
    "",
    "two words",
]


@pytest.mark.parametrize("name", ["g3s.xlarge", "a100-80gb-pcie", "h100_sxm.8x", "L4", "p3.2xlarge"])
def test_plain_instance_names_pass(name):
    assert is_safe_name(name) and check_name(name, "--anchor") == name


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_is_refused_in_one_line(name):
    with pytest.raises(ProfcastError) as refused:
        check_name(name, "--instance", "suite")
    message = str(refused.value)
    assert message.startswith("suite: --instance ") and "not a plain instance name" in message
    assert "\n" not in message and "\r" not in message and len(message) < 300  # quoted and cut: one line


def table_with_instance(instance: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "exp_name": "e",
                "instance_name": name,
                "dataset": "d",
                "model": "m",
                "optimizer": "sgd",
                "batchsize": 8,
                "Device_Conv2D": 5.0,
            }
            for name in ("g3s.xlarge", instance)
        ]
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES[:4])
def test_training_data_with_a_formula_for_an_instance_is_refused_naming_its_line(name):
    with pytest.raises(ProfcastError, match=r"^table.csv: line 3: instance_name .* is not a plain instance name"):
        validate_profiles(table_with_instance(name), source="table.csv", first_line=2)


def test_a_hostile_anchor_or_target_for_training_is_refused_before_the_data_is_searched():
    profiles = validate_profiles(table_with_instance("p2.xlarge"))
    with pytest.raises(ProfcastError, match="anchor '=1\\+1' is not a plain instance name"):
        resolve_targets(profiles, "=1+1", "all")
    with pytest.raises(ProfcastError, match="target '@x' is not a plain instance name"):
        resolve_targets(profiles, "g3s.xlarge", ["@x"])


@pytest.mark.parametrize("name", ['=HYPERLINK("x")', "-cmd", "../up"])
def test_predict_and_collect_refuse_a_hostile_name_in_one_line(name, tmp_path, capsys):
    profile = tmp_path / "p.json"
    profile.write_text('[{"Device_Conv2D": 1}]')
    assert exit_code(predict_main, ["--profile", str(profile), f"--anchor={name}"]) == 2
    assert (
        exit_code(collect_main, ["suite", "--suite", "smoke", f"--instance={name}", "--out", str(tmp_path / "o")]) == 2
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].startswith("profcast: error: --anchor ") and errors[1].startswith("profcast: error: --instance ")
    assert all("not a plain instance name" in line for line in errors) and len(errors) == 2
    assert not (tmp_path / "o").exists()  # nothing collected


def test_convert_refuses_a_formula_instance_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "table.csv"
    args = [str(CPU_TRACES[0]), "--out", str(out), "--exp", "e", "--instance=-1+1"]
    args += ["--dataset", "d", "--model", "m", "--optimizer", "sgd", "--batchsize", "8"]
    assert exit_code(convert_main, args) == 2
    assert "instance_name '-1+1' is not a plain instance name" in capsys.readouterr().err and not out.exists()


# ---- CSV cells --------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_text_cell_starting_a_formula_is_written_as_text(start):
    cell = f"{start}HYPERLINK(1)"
    assert safe_cell(cell) == "'" + cell
    written = to_safe_csv(pd.DataFrame({"gpu": [cell, "A100"], "x": [1.0, 2.0]}), index=False)
    read_back = pd.read_csv(io.StringIO(written), keep_default_na=False)
    assert list(read_back["gpu"]) == ["'" + cell, "A100"]


def test_numbers_stay_numbers_and_plain_text_is_untouched():
    table = pd.DataFrame(
        {
            "speedup": [-0.5, 1.25, np.nan],  # negative NUMBERS are numbers
            "count": [-3, 0, 7],
            "as_text": ["-0.5", "+3e2", "-"],  # numbers held as text, and the ranking's empty cell
            "instance": ["g3s.xlarge", "p2.xlarge", "=1+1"],
        }
    )
    safe = neutralised(table)
    pd.testing.assert_series_equal(safe["speedup"], table["speedup"])
    pd.testing.assert_series_equal(safe["count"], table["count"])
    assert list(safe["as_text"]) == ["-0.5", "+3e2", "-"]
    assert list(safe["instance"]) == ["g3s.xlarge", "p2.xlarge", "'=1+1"]
    assert table["instance"].iloc[2] == "=1+1"  # the caller's table is not changed


def test_a_carriage_return_inside_a_cell_cannot_start_a_row_with_a_formula():
    written = to_safe_csv(pd.DataFrame({"gpu": ["A100\r=HYPERLINK(1)", "L4"], "x": [-1.5, 2.0]}), index=False)
    read_back = pd.read_csv(io.StringIO(written))
    assert list(read_back["gpu"]) == ["A100\r=HYPERLINK(1)", "L4"] and list(read_back["x"]) == [-1.5, 2.0]


def test_header_and_index_are_neutralised_too():
    table = pd.DataFrame({"=cmd": ["a"]}, index=pd.Index(["@x"], name="rank"))
    assert to_safe_csv(table).splitlines() == ["rank,'=cmd", "'@x,a"]


def test_the_pages_csv_download_neutralises_a_hostile_gpu_name():
    table = pd.DataFrame(
        {"instance": ["g3s.xlarge"], "gpu": ["=HYPERLINK(1)"], "batch_latency_s": [0.25], "speedup": [-1.5]}
    )
    rows = pd.read_csv(io.StringIO(ranking_csv(table)))
    assert rows["gpu"].iloc[0] == "'=HYPERLINK(1)" and rows["speedup"].iloc[0] == -1.5
