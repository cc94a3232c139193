"""The unmeasured-GPU path's loose ends: one interval method, the cached download, a ranking column for 'measured'."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.pipeline.unmeasured_target import neusight_folder_of, unmeasured_interval_factors, widened_interval
from profcast.regressors.per_call import WIDENING_PER_DECADE, interval_factors

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NEUSIGHT = SHARED / "neusight"


def gpu_errors() -> pd.Series:
    """Nine runs of one GPU 2% slow, one run of another 40% fast: GPUs must weigh alike, runs not."""
    values = [0.02] * 9 + [-0.5]
    return pd.Series(values, index=pd.Index(["a"] * 9 + ["b"], name="gpu"))


def test_src_predict_and_the_served_target_share_one_interval_method():
    errors = gpu_errors()
    # src.predict --target-gpu: no regressor residual
    assert unmeasured_interval_factors(errors, 0.3) == pytest.approx(interval_factors(errors, outside_decades=0.3))
    # the served target: the regressor's residuals added, same weighting and widening
    interval = widened_interval(errors, [0.0, 0.1, np.nan], 0.3)
    factors = unmeasured_interval_factors(errors, 0.3, [0.0, 0.1])
    assert np.exp(interval.quantiles_) == pytest.approx(factors)


def test_gpus_weigh_alike_and_outside_figures_widen():
    errors = gpu_errors()
    low, _ = unmeasured_interval_factors(errors)
    unweighted_low, _ = np.exp(np.quantile(errors.to_numpy(), [0.1, 0.9]))
    assert low < unweighted_low  # GPU b's one run counts as much as GPU a's nine
    wide_low, wide_high = unmeasured_interval_factors(errors, outside_decades=1.0)
    narrow_low, narrow_high = unmeasured_interval_factors(errors)
    assert np.log(wide_low) == pytest.approx(np.log(narrow_low) * (1 + WIDENING_PER_DECADE))
    assert np.log(wide_high) == pytest.approx(np.log(narrow_high) * (1 + WIDENING_PER_DECADE))
    assert unmeasured_interval_factors(errors, own_log_residuals=[np.nan]) is None


def test_a_ranking_row_says_measured_in_its_own_column():
    from profcast.forecast.ranking import recommendation_table
    from profcast.forecast.report import ANCHOR_CELL, UNMEASURED_CELL, table_cells
    from profcast.jobmodel.requests import TARGET_INSTANCE, TARGET_MEASURED
    from profcast.schema import BATCH_LATENCY

    predicted = pd.DataFrame(
        {TARGET_INSTANCE: ["h100", "new-gpu"], BATCH_LATENCY: [0.2, 0.1], TARGET_MEASURED: [True, False]}
    )
    table = recommendation_table(predicted, "v100", 0.4, 8, 80, {})
    assert dict(zip(table["instance"], table["gpu_measured"])) == {"new-gpu": False, "h100": True, "v100": True}
    assert set(table["source"]) == {"predicted", "anchor, measured"}  # no 'unmeasured' inside a display string
    cells = {row[1]: row[-1] for row in table_cells(table)}
    assert cells == {"new-gpu": UNMEASURED_CELL, "h100": "", "v100": ANCHOR_CELL}


def test_target_gpu_names_what_an_aiconfigurator_file_lacks_for_the_per_call_model(tmp_path):
    from profcast.forecast.new_gpu import forecast_new_gpu

    # L4 has no spec-sheet row (ingest/gpu_spec_sheet.py): nothing to derive its FP32 peak, SMs, L2 or clock from
    system = tmp_path / "l4.yaml"
    system.write_text(
        "gpu:\n  mem_bw: 300000000000\n  mem_capacity: 24000000000\n  bfloat16_tc_flops: 121000000000000\n"
    )
    with pytest.raises(
        ProfcastError,
        match=r"l4\.yaml: no fp32_tflops for l4, which the per-call model needs, and the spec sheet "
        r"\(ingest/gpu_spec_sheet\.py\) cannot derive it; add fp32_tflops, l2_mb, sm_count, clock_mhz to a figures file",
    ):
        forecast_new_gpu(tmp_path / "profile.csv", "v100-pcie-32gb", system, tmp_path)


@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="../shared/data/neusight absent")
def test_target_gpu_takes_an_aiconfigurator_file_and_says_which_figures_were_derived(tmp_path, monkeypatch):
    from profcast.forecast import new_gpu
    from profcast.ingest.device_figures import DEVICE_CONFIGS, neusight_device_figures
    from profcast.regressors.per_call import PerCallModel
    from tests.test_per_call import synthetic_calls

    calls_data = tmp_path / "neusight"
    (calls_data / DEVICE_CONFIGS).mkdir(parents=True)
    for config in ("NVIDIA_A100_80GB_PCIe.json", "Tesla_V100-PCIE-32GB.json"):
        shutil.copy(NEUSIGHT / DEVICE_CONFIGS / config, calls_data / DEVICE_CONFIGS / config)
    devices = neusight_device_figures(calls_data)
    model = PerCallModel(max_iter=20).fit(synthetic_calls(devices.values()), devices)
    errors = pd.Series([0.1, -0.1], index=pd.Index(sorted(devices), name="gpu"))
    monkeypatch.setattr(new_gpu, "cached_per_call_model", lambda folder, left_out, fit: (model, errors))
    system = tmp_path / "h200_sxm.yaml"
    system.write_text(
        "gpu:\n  mem_bw: 4800000000000\n  mem_capacity: 151397597184\n  bfloat16_tc_flops: 989000000000000\n"
    )
    label = NEUSIGHT / "scripts/asplos/label/NVIDIA_A100_80GB_PCIe/bert_large-train-512-8.csv"
    answer = new_gpu.forecast_new_gpu(label, "a100-80gb-pcie", system, calls_data)
    lines = answer.splitlines()
    assert lines[0].startswith("h200: unmeasured GPU, forecast from its figures (h200_sxm.yaml)")
    # 67 TFLOPS / (2 x 132 SMs x 128 lanes) = 1,982.7 MHz: the clock the published FP32 peak implies
    assert lines[1] == (
        "figures its file lacks: sm_count 132 (published spec sheet, ingest/gpu_spec_sheet.py); l2_mb 50 (published "
        "spec sheet, ingest/gpu_spec_sheet.py); fp32_tflops 67 (published spec sheet, ingest/gpu_spec_sheet.py); "
        "clock_mhz 1983 (derived: FP32 peak / (2 x 132 SMs x 128 FP32 lanes per SM))"
    )
    step_ms = float(answer.split("step time ")[1].split(" ms")[0])
    assert step_ms > 0


@pytest.mark.skipif(not NEUSIGHT.is_dir(), reason="../shared/data/neusight absent")
def test_target_gpu_works_from_the_cached_download(tmp_path, monkeypatch):
    from profcast.datasets.sources import NeusightData
    from profcast.ingest.device_figures import neusight_device_figures
    from profcast.ingest.neusight_data import neusight_cache_dir

    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path))
    cache = neusight_cache_dir()
    # what data=neusight's download leaves (labels) and the kernel tables' download brings (device configs)
    (cache / "scripts" / "asplos" / "label").mkdir(parents=True)
    configs = Path("scripts/asplos/data/dataset/test/device_configs")
    shutil.copytree(NEUSIGHT / configs, cache / configs)
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("nothing is downloaded"))
    assert neusight_folder_of(NeusightData()) == cache
    figures = neusight_device_figures(cache)
    assert {"l4", "h100-80gb-hbm3", "v100-pcie-32gb"} <= set(figures) and figures["l4"].power_w == 72
    (cache / configs / "NVIDIA_L4.json").write_text("{}")  # a damaged cached file is refused, not read
    with pytest.raises(ProfcastError, match=r"NVIDIA_L4\.json: 2 bytes, but .*manifest mismatch"):
        neusight_folder_of(NeusightData())
