"""The kernel atlas's readers: NeuSight kernel CSVs and AIConfigurator Parquet tables into one schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profcast.atlas.aiconfigurator import read_aiconfigurator_table
from profcast.atlas.collectives import COLLECTIVE_COLUMNS
from profcast.atlas.files import atlas_file_kind, load_atlas
from profcast.atlas.neusight_kernels import read_neusight_kernels
from profcast.atlas.table import KERNEL_COLUMNS, kernel_table
from profcast.errors import ProfcastError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEUSIGHT_KERNELS = SHARED / "neusight" / "scripts" / "asplos" / "data"
AICONFIGURATOR = SHARED / "aiconfigurator"

BMM_HEADER = "OPName,Latency,Device,Kernel Name,Kernels,B,M,N,K\n"
VEC_HEADER = "OPName,Latency,Device,Kernel Name,B,H\n"


def write_neusight(folder: Path, name: str, text: str, split: str = "train") -> Path:
    path = folder / "dataset" / split / "collect" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_gemm_parquet(path: Path, dtype: str = "bfloat16", rows: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "device": ["NVIDIA H200"] * rows,
            "op_name": "gemm",
            "kernel_source": "torch.nn.functional.linear",
            "gemm_dtype": dtype,
            "m": [16, 32][:rows] + [64] * (rows - 2),
            "n": 8,
            "k": 4,
            "latency": [0.01, 0.02][:rows] + [0.03] * (rows - 2),
        }
    )
    frame.to_parquet(path, index=False)
    return path


def test_neusight_bmm_row_has_hand_computed_work(tmp_path):
    path = write_neusight(tmp_path, "bmm/p2.1.0/Tesla T4.csv", BMM_HEADER + "bmm,0.5,Tesla T4,sgemm,;sgemm,2,3,5,7\n")
    row = read_neusight_kernels(path).iloc[0]
    assert (row["gpu"], row["precision"], row["op_kind"], row["phase"], row["split"]) == (
        "t4",
        "fp32",
        "bmm",
        "forward",
        "train",
    )
    assert row["flops"] == 2 * 2 * 3 * 5 * 7
    assert row["bytes"] == 2 * (3 * 7 + 7 * 5 + 3 * 5) * 4  # A, B read and C written, 4 bytes each
    assert np.isnan(row["kv_heads"]) and row["latency_ms"] == 0.5


def test_neusight_elementwise_counts_inputs(tmp_path):
    text = VEC_HEADER + "add,0.1,NVIDIA L4,k,10,20\naddu,0.1,NVIDIA L4,k,10,20\nln,0.2,NVIDIA L4,k,10,20\n"
    rows = read_neusight_kernels(write_neusight(tmp_path, "vec/p2.1.0/NVIDIA L4.csv", text))
    assert list(rows["op"]) == ["add", "addu", "layer_norm"]
    assert list(rows["op_kind"]) == ["elementwise", "elementwise", "layernorm"]
    assert list(rows["bytes"]) == [3 * 200 * 4, 2 * 200 * 4, 2 * 200 * 4]  # add reads two tensors
    assert list(rows["flops"]) == [200, 200, 8 * 200]
    assert (rows[["batch", "m", "n", "k"]].to_numpy() == [1, 10, 20, 1]).all()


def test_truncated_neusight_csv_is_one_line(tmp_path):
    path = write_neusight(
        tmp_path, "bmm/p2.1.0/Tesla T4.csv", BMM_HEADER + "bmm,0.5,Tesla T4,sgemm,;sgemm,2,3,5,7\nbmm,0.4,Te"
    )
    with pytest.raises(ProfcastError, match=r"Tesla T4\.csv: line 3: column .* is empty \(a truncated file\?\)"):
        read_neusight_kernels(path)


def test_aiconfigurator_gemm_keeps_fastest_kernel_and_maps_gpu(tmp_path):
    path = tmp_path / "systems" / "data" / "h200_sxm" / "gemm" / "vllm" / "0.24.0" / "gemm_perf.parquet"
    write_gemm_parquet(path)
    frame = pd.read_parquet(path)
    slower = frame.iloc[[0]].assign(kernel_source="other", latency=0.5)
    pd.concat([frame, slower]).to_parquet(path, index=False)
    kind, rows = read_aiconfigurator_table(path)
    assert kind == "gemm" and len(rows) == 2
    assert set(rows["gpu"]) == {"h200"} and set(rows["precision"]) == {"bf16"}
    first = rows.sort_values("m").iloc[0]
    assert first["latency_ms"] == 0.01  # the faster of the two kernels timed on that shape
    assert first["flops"] == 2 * 16 * 8 * 4 and first["bytes"] == (16 * 4 + 4 * 8 + 16 * 8) * 2


def test_unknown_gemm_precision_is_one_line(tmp_path):
    path = write_gemm_parquet(tmp_path / "gemm_perf.parquet", dtype="int4_awq")
    with pytest.raises(ProfcastError, match=r"gemm_perf\.parquet: gemm_dtype 'int4_awq' is not a precision"):
        read_aiconfigurator_table(path)


def test_truncated_parquet_is_one_line(tmp_path):
    whole = write_gemm_parquet(tmp_path / "whole.parquet").read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ProfcastError, match=r"cut\.parquet: cannot be read as Parquet"):
        load_atlas([tmp_path])


def test_kernel_table_refuses_unknown_precision():
    frame = pd.DataFrame([{c: 1 for c in KERNEL_COLUMNS}])
    frame = frame.assign(
        source="neusight", gpu="t4", precision="int3", op_kind="bmm", op="bmm", phase="forward", split="all"
    )
    with pytest.raises(ProfcastError, match=r"here: row 0: precision 'int3' is not one of fp32, tf32"):
        kernel_table(frame, "here")


def test_load_atlas_reads_by_content_and_keeps_repeated_rows_once(tmp_path):
    text = VEC_HEADER + "add,0.1,NVIDIA L4,k,10,20\n"
    write_neusight(tmp_path, "elem.csv", text, split="test")
    write_neusight(tmp_path, "vec.csv", text, split="test")  # NeuSight's vec.csv repeats elem.csv
    (tmp_path / "dims.csv").write_text("B,H\n10,20\n")  # shapes only: not a table of the atlas
    write_gemm_parquet(tmp_path / "systems" / "data" / "l40s" / "gemm" / "v" / "1" / "gemm_perf.parquet")
    atlas = load_atlas([tmp_path])
    assert sorted(atlas.kernels["source"].astype(str).unique()) == ["aiconfigurator", "neusight"]
    assert len(atlas.kernels) == 1 + 2 and atlas.passed_over == 1
    assert atlas_file_kind(tmp_path / "dims.csv") is None
    assert list(atlas.collectives.columns) == list(COLLECTIVE_COLUMNS)


def test_folder_without_atlas_tables_is_one_line(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing")
    with pytest.raises(ProfcastError, match="holds no atlas table"):
        load_atlas([tmp_path])


@pytest.mark.skipif(not AICONFIGURATOR.is_dir(), reason="../shared/data/aiconfigurator absent")
def test_real_aiconfigurator_tables_read():
    comm = next((AICONFIGURATOR / "systems" / "data" / "h100_sxm" / "comm").rglob("*.parquet"))
    kind, rows = read_aiconfigurator_table(comm)
    assert kind == "collectives" and set(rows["gpu"]) == {"h100-80gb-hbm3"}
    assert set(rows["op"]) == {"all_reduce", "all_gather", "reduce_scatter", "alltoall"}
    attention = next((AICONFIGURATOR / "systems" / "data" / "h100_sxm" / "attention").rglob("*.parquet"))
    kind, rows = read_aiconfigurator_table(attention)
    assert kind == "attention" and rows["kv_heads"].notna().all() and (rows["kv_heads"] <= rows["n"]).all()


@pytest.mark.skipif(not NEUSIGHT_KERNELS.is_dir(), reason="../shared/data/neusight absent")
def test_real_neusight_test_set_names_the_eight_gpus():
    rows = read_neusight_kernels(NEUSIGHT_KERNELS / "dataset" / "test" / "linear.csv")
    assert set(rows["split"]) == {"test"}
    assert {"h100-80gb-hbm3", "l4", "a100-80gb-pcie", "t4"} <= set(rows["gpu"].astype(str))


def test_neusight_conv_as_its_implicit_gemm(tmp_path):
    header = "OPName,Latency,Device,Kernel Name,B,Input_Channel,Output_Channel,Kernel_Szie,Input_Size,Stride,Padding\n"
    path = write_neusight(tmp_path, "conv/p2.1.0/Tesla T4.csv", header + "conv,1.5,Tesla T4,k,2,3,4,3,5,1,0\n")
    row = read_neusight_kernels(path).iloc[0]
    # output side (5 - 3) / 1 + 1 = 3: m = 9 output pixels, n = 4 channels, k = 3 channels x 3 x 3
    assert (row["batch"], row["m"], row["n"], row["k"], row["op"]) == (2, 9, 4, 27, "conv2d")
    assert row["flops"] == 2 * 2 * 9 * 4 * 27
    assert row["bytes"] == (2 * 3 * 25 + 4 * 3 * 9 + 2 * 4 * 9) * 4  # input, weight, output in FP32


def test_a_kernel_table_given_as_a_profile_says_what_it_is(tmp_path):
    from profcast.ingest.profile_files import profile_kind

    path = write_neusight(tmp_path, "bmm/p2.1.0/Tesla T4.csv", BMM_HEADER + "bmm,0.5,Tesla T4,sgemm,;sgemm,2,3,5,7\n")
    with pytest.raises(ProfcastError, match=r"a NeuSight kernel table .* not a profile; read it with `profcast atlas"):
        profile_kind(path)
