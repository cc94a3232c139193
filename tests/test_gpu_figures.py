"""GPU figures files read as they are: AIConfigurator's systems/*.yaml, NeuSight's configs, profcast's own YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.device_figures import neusight_device_figures, read_device_figures

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SYSTEMS = SHARED / "aiconfigurator" / "systems"

SYSTEM_YAML = """\
data_dir: data/h200_sxm
gpu:
  mem_bw: 4800000000000 # 4800GB/s
  mem_capacity: 151397597184 # 141GiB
  bfloat16_tc_flops: 989000000000000
  fp8_tc_flops: 1978000000000000
  int8_tc_flops: 1978000000000000
  power: 700
node:
  num_gpus_per_node: 8
  inter_node_bw: 50000000000
  intra_node_bw: 450000000000
  pcie_bw: 64000000000
  p2p_latency: 0.00001
"""


def write(tmp_path, text, name="h200_sxm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_aiconfigurator_system_in_our_units(tmp_path):
    figures = read_device_figures(write(tmp_path, SYSTEM_YAML))
    assert figures.name == "h200"  # the system's slug (one table with the atlas's GPU names)
    assert figures.peaks == {"bf16": 989.0, "fp8": 1978.0}  # TFLOPS; int8 is no training precision
    assert figures.memory_bandwidth_gbs == 4800.0 and figures.memory_gb == 141.0  # GB/s, GiB
    assert figures.power_w == 700.0
    node = figures.node
    assert (node.gpus_per_node, node.intra_node_bw_gbs, node.inter_node_bw_gbs) == (8, 450.0, 50.0)
    assert node.p2p_latency_us == 10.0 and node.gpus_per_rack is None
    assert figures.peak_flops(matrix=True, dtype="bfloat16") == 989e12
    assert figures.peak_tflops("fp8") == 1978.0 and figures.peak_tflops("fp4") is None
    assert figures.fp32_tflops is None and figures.l2_mb is None  # not in the file: not invented


def test_no_fp32_peak_to_fall_back_on_is_one_line(tmp_path):
    figures = read_device_figures(write(tmp_path, SYSTEM_YAML))
    with pytest.raises(ProfcastError, match="h200: no fp32 peak and no FP32 peak to fall back on; it gives bf16, fp8"):
        figures.peak_flops(matrix=True)
    with pytest.raises(ProfcastError, match="GPU figures of h200: no l2_mb, which the model needs"):
        figures.require(("l2_mb",), "the model")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  bfloat16_tc_flops: 989000000000000\n  fp8_tc_flops: 1978000000000000\n", "", "gives no tensor-core peak"),
        ("bfloat16_tc_flops: 989000000000000", "bfloat16_tc_flops: 0", "gpu.bfloat16_tc_flops 0 is not a positive"),
        ("bfloat16_tc_flops: 989000000000000", "bfloat16_tc_flops: -989", "gpu.bfloat16_tc_flops -989 is not"),
        ("bfloat16_tc_flops: 989000000000000", "bfloat16_tc_flops: .nan", "gpu.bfloat16_tc_flops nan is not"),
        ("fp8_tc_flops: 1978000000000000", "fp8_tc_flops: fast", "gpu.fp8_tc_flops 'fast' is not"),
        ("  mem_bw: 4800000000000 # 4800GB/s\n", "", "gpu: missing 'mem_bw'"),
        ("  intra_node_bw: 450000000000\n", "", "node: missing 'intra_node_bw'"),
        ("num_gpus_per_node: 8", "num_gpus_per_node: 7.5", "node.gpus_per_node 7.5 is not a whole number"),
    ],
)
def test_bad_system_figures_are_one_line(tmp_path, old, new, message):
    assert old in SYSTEM_YAML
    path = write(tmp_path, SYSTEM_YAML.replace(old, new))
    with pytest.raises(ProfcastError, match=message) as raised:
        read_device_figures(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_unknown_precision_is_one_line(tmp_path):
    figures = read_device_figures(write(tmp_path, SYSTEM_YAML))
    with pytest.raises(ProfcastError, match="unknown precision 'fp6'; accepted: fp32, tf32, bf16, fp16, fp8, fp4"):
        figures.peak_tflops("fp6")
    own = "fp32_tflops: 1\nmemory_bandwidth_gbs: 1\nmemory_gb: 1\nl2_mb: 1\nsm_count: 1\nclock_mhz: 1\nfp6_tflops: 2\n"
    with pytest.raises(ProfcastError, match="unknown key 'fp6_tflops'"):
        read_device_figures(write(tmp_path, own, "mine.yaml"))


def test_own_yaml_takes_power_fp8_and_node(tmp_path):
    text = (
        "name: my-gpu\nfp32_tflops: 67\nbf16_tflops: 989\nfp8_tflops: 1979\nmemory_bandwidth_gbs: 4800\n"
        "memory_gb: 141\nl2_mb: 50\nsm_count: 132\nclock_mhz: 1980\npower_w: 700\n"
        "node: {gpus_per_node: 8, intra_node_bw_gbs: 450, inter_node_bw_gbs: 50}\n"
    )
    figures = read_device_figures(write(tmp_path, text, "mine.yaml"))
    assert figures.power_w == 700 and figures.node.gpus_per_node == 8 and figures.peak_tflops("fp8") == 1979
    assert figures.peak_flops(matrix=False) == 67e12  # FP32 still its own


def test_neusight_config_gets_its_published_power(tmp_path):
    config = {"Dev_Mem": 24, "Mem_Bw": 300, "Num_Sm": 58, "Freq": 2040, "SingleFLOPs": 30290, "L2Cache": 48}
    (tmp_path / "NVIDIA_L4.json").write_text(json.dumps(config))
    (tmp_path / "Tesla_P4.json").write_text(json.dumps(config))
    figures = neusight_device_figures(tmp_path)
    assert figures["l4"].power_w == 72  # NVIDIA's L4 datasheet
    assert figures["p4"].power_w is None  # no single published figure (50 or 75 W): none invented


@pytest.mark.skipif(not SYSTEMS.is_dir(), reason="../shared/data/aiconfigurator absent")
def test_every_real_system_file_reads():
    figures = [read_device_figures(path) for path in sorted(SYSTEMS.glob("*.yaml"))]
    assert len(figures) == 14
    assert all(f.peak_tflops("bf16") > 0 and f.power_w > 0 and f.node.gpus_per_node >= 4 for f in figures)
    by_name = {f.name: f for f in figures}
    assert by_name["gb200"].node.gpus_per_rack == 72
    assert by_name["b200"].peak_tflops("fp4") > by_name["b200"].peak_tflops("fp8") > by_name["b200"].peak_tflops("bf16")


def test_same_gpu_from_both_sources_is_one_record(tmp_path):
    from profcast.atlas.figures import gpu_figures

    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "h100_sxm.yaml").write_text(SYSTEM_YAML.replace("151397597184", "85899345920"))
    configs = tmp_path / "scripts" / "asplos" / "data" / "device_configs"
    configs.mkdir(parents=True)
    config = {"Dev_Mem": 80, "Mem_Bw": 3352, "Num_Sm": 132, "Freq": 1980, "SingleFLOPs": 66900, "L2Cache": 50}
    (configs / "NVIDIA_H100_80GB_HBM3.json").write_text(json.dumps(config))
    (configs / "NVIDIA_L4.json").write_text(json.dumps(config))
    figures = gpu_figures([tmp_path])
    assert sorted(figures) == ["h100-80gb-hbm3", "l4"]
    h100 = figures["h100-80gb-hbm3"]
    assert h100.memory_bandwidth_gbs == 3352 and h100.sm_count == 132  # NeuSight's where both give one
    assert h100.peak_tflops("bf16") == 989.0 and h100.peak_tflops("fp32") == 66.9  # both precisions
    assert h100.power_w == 700 and h100.node.gpus_per_node == 8  # the NeuSight config has neither


def test_the_clock_is_the_one_the_published_fp32_peak_implies(tmp_path):
    from profcast.ingest.gpu_spec_sheet import derived_figures

    a100 = tmp_path / "a100_sxm.yaml"
    a100.write_text(
        "gpu:\n  mem_bw: 2039000000000\n  mem_capacity: 85899345920\n  bfloat16_tc_flops: 312000000000000\n"
    )
    figures, derived = derived_figures(read_device_figures(a100))
    # 19.5 TFLOPS / (2 FLOPs x 108 SMs x 64 FP32 lanes) = 1,410.6 MHz (A100's published boost clock: 1,410)
    assert figures.clock_mhz == pytest.approx(19.5e6 / (2 * 108 * 64))
    assert (figures.sm_count, figures.l2_mb, figures.fp32_tflops) == (108, 40, 19.5)
    assert [phrase.split()[0] for phrase in derived] == ["sm_count", "l2_mb", "fp32_tflops", "clock_mhz"]
    given = read_device_figures(write(tmp_path, a100.read_text().replace("gpu:", "gpu:\n  float32_tc_flops: 1.0e+13")))
    assert derived_figures(given)[0].fp32_tflops == given.fp32_tflops  # a figure the file gives is kept
