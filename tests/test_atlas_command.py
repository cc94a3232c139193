"""``profcast atlas``: coverage printed and plotted from atlas folders; bad input one line, nothing written."""

from __future__ import annotations

import pandas as pd
import pytest

from profcast.atlas.__main__ import main
from profcast.atlas.coverage import kernel_coverage
from profcast.cli import exit_code
from tests.test_atlas_tables import BMM_HEADER, VEC_HEADER, write_gemm_parquet, write_neusight


@pytest.fixture
def atlas_folder(tmp_path):
    folder = tmp_path / "data"
    write_neusight(
        folder, "bmm/p/Tesla T4.csv", BMM_HEADER + "bmm,0.5,Tesla T4,s,;s,2,3,5,7\nbmm,0.6,Tesla T4,s,;s,2,3,5,8\n"
    )
    write_neusight(folder, "add/p/Tesla T4.csv", VEC_HEADER + "add,0.1,Tesla T4,k,10,20\n")
    write_gemm_parquet(folder / "systems" / "data" / "h200_sxm" / "gemm" / "v" / "1" / "gemm_perf.parquet")
    return folder


def test_coverage_counts_rows_per_gpu_kind_and_precision(atlas_folder, tmp_path, capsys):
    plot = tmp_path / "coverage.png"
    assert exit_code(main, ["--data", str(atlas_folder), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "kernel atlas: 5 rows, 2 GPUs" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from profcast.atlas.files import load_atlas

    coverage = kernel_coverage(load_atlas([atlas_folder]).kernels)
    assert coverage.loc["t4", "bmm/fp32"] == 2 and coverage.loc["t4", "elementwise/fp32"] == 1
    assert coverage.loc["h200", "gemm/bf16"] == 2 and coverage.loc["h200", "bmm/fp32"] == 0
    assert list(coverage.columns) == ["bmm/fp32", "gemm/bf16", "elementwise/fp32"]  # the schema's order


def test_truncated_table_is_one_line_and_no_plot(atlas_folder, tmp_path, capsys):
    gemm = next(atlas_folder.rglob("*.parquet"))
    gemm.write_bytes(gemm.read_bytes()[:100])
    plot = tmp_path / "coverage.png"
    assert exit_code(main, ["--data", str(atlas_folder), "--plot", str(plot)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gemm_perf.parquet: cannot be read as Parquet" in err
    assert not plot.exists() and not any(tmp_path.glob("*.png"))


def test_missing_folder_is_one_line(tmp_path, capsys):
    assert exit_code(main, ["--data", str(tmp_path / "nowhere"), "--plot", str(tmp_path / "c.png")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


def test_kernel_coverage_of_no_rows_is_empty():
    assert kernel_coverage(pd.DataFrame({"gpu": [], "op_kind": [], "precision": []})).empty
