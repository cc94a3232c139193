"""``profcast plan``: one plan's report and JSON, the search's rankings, and one line for each bad input."""

from __future__ import annotations

import json

import pytest
import yaml

from profcast.cli import exit_code
from profcast.distributed.model_config import ModelShape
from profcast.distributed.search import candidate_plans, rank_plans, search_plans
from profcast.distributed.step import Planner
from profcast.plan import main
from tests.conftest import REPO
from tests.test_distributed import figures_only_system

GPT2 = str(REPO / "examples" / "models" / "gpt2-large" / "config.json")
LLAMA = str(REPO / "examples" / "models" / "llama-3-8b" / "config.json")
FIGURES = {
    "name": "round-gpu",
    "fp32_tflops": 20,
    "bf16_tflops": 300,
    "memory_bandwidth_gbs": 2000,
    "memory_gb": 80,
    "node": {"gpus_per_node": 8, "intra_node_bw_gbs": 300, "inter_node_bw_gbs": 25},
}
PLAN_ARGS = [
    "--gpus",
    "8",
    "--tp",
    "2",
    "--pp",
    "2",
    "--dp",
    "2",
    "--micro-batch",
    "2",
    "--global-batch",
    "32",
    "--seq",
    "1024",
]


@pytest.fixture
def gpu_file(tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(FIGURES))
    return str(path)


def run(argv, capsys):
    code = exit_code(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_plan_prints_each_term_on_its_own_line_and_the_answers(gpu_file, capsys):
    code, out, err = run(["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS], capsys)
    assert code == 0 and err == ""
    for label in (
        "compute (GPU)",
        "TP all-reduces",
        "pipeline bubble",
        "pipeline sends",
        "DP all-reduce",
        "optimizer and per-step",
    ):
        assert sum(label in line for line in out.splitlines()) == 1
    for answer in ("step time", "tokens/s", "MFU", "memory per GPU", "time per 1M tokens", "cost per 1M tokens"):
        assert answer in out
    assert "n/a" in out  # round-gpu has no price in conf/gpus.yaml


def test_json_holds_the_promised_keys_and_the_terms_sum_to_the_step(gpu_file, capsys):
    code, out, _ = run(["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS, "--json", "--price-per-gpu-hour", "2"], capsys)
    answer = json.loads(out)
    assert code == 0
    assert {"step_ms", "tokens_per_s", "mfu", "memory_gb_per_gpu", "fits", "terms_ms"} <= set(answer)
    assert sum(answer["terms_ms"].values()) == pytest.approx(answer["step_ms"])
    assert answer["tokens_per_s"] == pytest.approx(32 * 1024 / (answer["step_ms"] / 1e3))
    hours = 1e6 / answer["tokens_per_s"] / 3600
    assert answer["cost_per_1m_tokens"] == pytest.approx(hours * 8 * 2.0)
    assert 0 < answer["mfu"] < 1


def test_recomputation_trades_time_for_memory(gpu_file, capsys):
    _, plain, _ = run(["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS, "--json"], capsys)
    _, again, _ = run(["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS, "--json", "--recompute"], capsys)
    plain, again = json.loads(plain), json.loads(again)
    assert again["step_ms"] > plain["step_ms"]
    assert again["memory_gb"]["activations"] < plain["memory_gb"]["activations"]


def test_search_ranks_valid_plans_fitting_first(gpu_file, capsys):
    code, out, _ = run(
        ["--search", "--model", LLAMA, "--gpu", gpu_file, "--gpus", "16,32"]
        + ["--global-batch", "64", "--seq", "2048", "--json"],
        capsys,
    )
    answer = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert code == 0 and answer["plans"] > 0
    assert all(row["cost_per_1m_tokens"] is None for row in answer["by_cost"])  # round-gpu has no price
    times = [row["step_ms"] for row in answer["by_time"] if row["fits"]]
    assert times == sorted(times)
    for row in answer["by_time"]:
        assert row["tp"] * row["pp"] * row["dp"] == row["gpus"] and row["gpus"] in (16, 32)
        assert 32 % row["pp"] == 0 and 8 % row["tp"] == 0  # 32 layers; 8 KV heads


def test_every_candidate_plan_is_valid_and_the_ranking_puts_misfits_last():
    shape = ModelShape("tiny", hidden=128, layers=6, heads=4, kv_heads=4, ffn=512, vocab=1000)
    planner = Planner(shape, figures_only_system(memory_bytes=4e6))  # 4 MB: only some plans fit
    plans = list(candidate_plans(planner, 12, 24, 64, "bf16"))
    assert plans and all(p.tp * p.pp * p.dp == 12 and 6 % p.pp == 0 and 4 % p.tp == 0 for p in plans)
    ranked = rank_plans(list(search_plans([planner], [12], 24, 64, "bf16")), "time")
    fits = ranked["fits"].tolist()
    assert fits == sorted(fits, reverse=True)  # every plan that fits before any that does not


BAD = [
    (["--tp", "2", "--pp", "2", "--dp", "4"], "multiply to the GPU count"),
    (["--tp", "8", "--pp", "1", "--dp", "1"], "does not divide the model's 20 attention heads"),
    (["--tp", "1", "--pp", "8", "--dp", "1"], "does not divide the model's 36 layers"),
    (["--global-batch", "30"], "not a multiple of --micro-batch 2 x --dp 2"),
    (["--gpus", "eight"], "expected a whole number of GPUs"),
    (["--tp", "two"], "invalid int value"),
]


@pytest.mark.parametrize("changes, message", BAD)
def test_bad_plans_are_one_line_and_exit_2(gpu_file, capsys, changes, message):
    argv = ["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS]
    for option, value in zip(changes[::2], changes[1::2]):
        argv[argv.index(option) + 1] = value
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("profcast: error:") and message in err


def test_a_gpu_without_interconnect_figures_is_one_line(tmp_path, capsys):
    path = tmp_path / "no-node.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in FIGURES.items() if k != "node"}))
    code, _, err = run(["--model", GPT2, "--gpu", str(path), *PLAN_ARGS], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "GPU without interconnect figures" in err and str(path) in err


def test_a_config_missing_a_key_is_one_line(tmp_path, gpu_file, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"n_embd": 1280, "n_layer": 36, "vocab_size": 50257}))
    code, _, err = run(["--model", str(config), "--gpu", gpu_file, *PLAN_ARGS], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "missing key 'n_head'" in err


def test_a_plan_missing_a_degree_says_which(gpu_file, capsys):
    argv = ["--model", GPT2, "--gpu", gpu_file, "--gpus", "8", "--global-batch", "32", "--seq", "1024"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "--tp, --pp, --dp, --micro-batch" in err


def test_a_missing_layer_profile_is_one_line(tmp_path, gpu_file, capsys):
    missing = tmp_path / "gpt2_large-train-1024-4.csv"
    code, _, err = run(["--model", GPT2, "--gpu", gpu_file, *PLAN_ARGS, "--layer-profile", str(missing)], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and str(missing) in err
