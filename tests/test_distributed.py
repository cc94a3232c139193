"""The distributed step model: a config.json's calls, the plan's checks, each term, memory, collectives, fitting."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from profcast.distributed import terms
from profcast.distributed.collectives import Collectives
from profcast.distributed.fit import fit_constants, forecast_ms
from profcast.distributed.gemm_times import GemmTimes
from profcast.distributed.memory import activation_bytes_per_layer, memory_per_gpu
from profcast.distributed.model_config import (
    Gemm,
    ModelShape,
    backward_gemms,
    layer_calls,
    model_shape_from_mapping,
    read_model_config,
)
from profcast.distributed.plan import ParallelPlan, validate_plan
from profcast.distributed.system import GpuSystem
from profcast.errors import ProfcastError
from tests.conftest import REPO

EXAMPLES = REPO / "examples" / "models"
SHARED = REPO.parent / "shared" / "data"
A100_SYSTEM = SHARED / "aiconfigurator" / "systems" / "a100_sxm.yaml"
SMALL = ModelShape("small", hidden=64, layers=4, heads=4, kv_heads=4, ffn=256, vocab=1000)


def figures_only_system(**changes) -> GpuSystem:
    """A GPU with figures and no measured tables: round numbers for hand computation."""
    values = dict(
        name="round",
        peaks={"bf16": 100e12, "fp32": 10e12},
        memory_bandwidth=1e12,
        memory_bytes=80e9,
        gpus_per_node=8,
        intra_node_bandwidth=100e9,
        inter_node_bandwidth=10e9,
        link_latency_s=1e-5,
    )
    return GpuSystem(**(values | changes))


def test_example_configs_give_the_published_parameter_counts():
    gpt2 = read_model_config(EXAMPLES / "gpt2-large" / "config.json")
    llama = read_model_config(EXAMPLES / "llama-3-8b" / "config.json")
    # GPT-2 Large 774M and Llama 3 8B 8.03B as published (GPT-2's 1.3M position embeddings are not counted)
    assert gpt2.parameters() == pytest.approx(774e6, rel=0.01)
    assert llama.parameters() == pytest.approx(8.03e9, rel=0.005)
    assert (gpt2.ffn, gpt2.kv_heads, gpt2.gated_mlp) == (4 * 1280, 20, False)  # n_inner null means 4 x n_embd
    assert (llama.kv_heads, llama.gated_mlp, llama.tied_embeddings) == (8, True, False)


@pytest.mark.parametrize("style, key", [("gpt2", "n_head"), ("llama", "intermediate_size")])
def test_a_config_missing_a_key_is_one_line_naming_it(tmp_path, style, key):
    source = EXAMPLES / ("gpt2-large" if style == "gpt2" else "llama-3-8b") / "config.json"
    content = json.loads(source.read_text())
    del content[key]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ProfcastError, match=rf"{path}.*missing key '{key}'"):
        read_model_config(path)


def test_layer_calls_split_by_tensor_parallelism_and_backward_permutes_shapes():
    one, four = layer_calls(SMALL, 2, 16, 1, "bf16"), layer_calls(SMALL, 2, 16, 4, "bf16")
    assert sum(g.flops for g in four.gemms) * 4 == pytest.approx(sum(g.flops for g in one.gemms))
    assert one.flops == pytest.approx(
        2 * 32 * 12 * 64 * 64 + 2 * 2 * 2 * 4 * 16 * 16 * 16
    )  # 24 h^2 per token + 4 b s^2 h
    dgrad, wgrad = backward_gemms(Gemm("x", 32, 48, 64))
    assert (dgrad.m, dgrad.n, dgrad.k) == (32, 64, 48) and (wgrad.m, wgrad.n, wgrad.k) == (64, 48, 32)
    assert dgrad.flops == wgrad.flops == Gemm("x", 32, 48, 64).flops


PLAN = dict(gpus=8, tp=2, pp=2, dp=2, micro_batch=2, global_batch=16, seq=16)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(dp=4), "multiply to the GPU count"),
        (dict(tp=8, pp=1, dp=1), "does not divide the model's 4 attention heads"),
        (dict(tp=1, pp=8, dp=1), "does not divide the model's 4 layers"),
        (dict(global_batch=10), "not a multiple of --micro-batch 2 x --dp 2"),
        (dict(precision="int3"), "--precision 'int3'"),
        (dict(zero=3), "ZeRO stage 0 or 1"),
    ],
)
def test_plan_checks_name_the_value_at_fault(changes, message):
    with pytest.raises(ProfcastError, match=message):
        validate_plan(ParallelPlan(**(PLAN | changes)), SMALL)


def test_a_valid_plan_counts_its_microbatches_and_tokens():
    plan = validate_plan(ParallelPlan(**PLAN), SMALL)
    assert (plan.microbatches, plan.tokens_per_step) == (16 // (2 * 2), 16 * 16)


def test_smooth_max_lies_between_the_max_and_the_sum():
    gpu, host = np.array([1.0, 3.0, 10.0]), np.array([3.0, 3.0, 1.0])
    for p in (1.0, 3.0, 20.0):
        joined = terms.smooth_max(gpu, host, p)
        assert np.all(joined >= np.maximum(gpu, host) - 1e-12) and np.all(joined <= gpu + host + 1e-12)
    assert terms.smooth_max(gpu, host, 1.0) == pytest.approx(gpu + host)
    assert terms.smooth_max(10.0, 1.0, 50.0) == pytest.approx(10.0, rel=1e-3)


RAW = {
    "layer_gemm": 2e-3,
    "layer_attention": 1e-3,
    "layer_memory": 1e-3,
    "layer_tp": 0.5e-3,
    "head_gemm": 4e-3,
    "head_memory": 0.0,
    "host_passes": 1.0,
    "layers_on_stage": 3,
    "microbatches": 5,
    "pp": 4,
    "p2p": 2e-3,
    "p2p_sends": 16,
    "dp": 10e-3,
    "optimizer": 1e-3,
}
UNIT = {
    "gemm": 1.0,
    "attention": 1.0,
    "memory": 1.0,
    "host_layer_ms": 0.0,
    "host_head_ms": 0.0,
    "sharpness": 1.0,
    "tp": 1.0,
    "p2p": 1.0,
    "p2p_send_ms": 0.1,
    "dp": 0.5,
    "optimizer": 1.0,
    "step_ms": 2.0,
}


def test_the_terms_compose_the_1f1b_step_by_hand():
    got = terms.step_terms(RAW, UNIT)
    layer, head = 2 + 1 + 1, 4  # ms of GPU compute per micro-batch; no host time
    assert got["compute"] == pytest.approx(5 * (3 * layer + head))
    assert got["tp_collectives"] == pytest.approx(5 * 3 * 0.5)
    assert got["host_overhead"] == pytest.approx(0.0, abs=1e-9)
    assert got["pipeline_bubble"] == pytest.approx((4 - 1) * 3 * (layer + 0.5))  # the head runs on the last stage only
    assert got["p2p_sends"] == pytest.approx(2 + 16 * 0.1)
    assert got["dp_allreduce"] == pytest.approx(0.5 * 10)
    assert got["optimizer"] == pytest.approx(1 + 2)


def test_a_host_bound_layer_waits_on_the_host():
    slow_host = UNIT | {"host_layer_ms": 100.0, "sharpness": 30.0}
    got = terms.step_terms(RAW, slow_host)
    # each layer takes about the host's 100 ms instead of its 4.5 ms on the GPU
    assert got["compute"] + got["tp_collectives"] + got["host_overhead"] == pytest.approx(5 * (3 * 100 + 4), rel=0.01)


def test_collectives_from_node_figures_follow_the_ring_formulas():
    collectives = Collectives(figures_only_system())
    megabyte = 1e6
    assert collectives.seconds("all_reduce", megabyte, 4) == pytest.approx(2 * 3 / 4 * megabyte / 100e9 + 2 * 3 * 1e-5)
    assert collectives.seconds("all_gather", megabyte, 4) == pytest.approx(3 / 4 * megabyte / 100e9 + 3 * 1e-5)
    assert collectives.seconds("all_reduce", megabyte, 16, across_nodes=True) > collectives.seconds(
        "all_reduce", megabyte, 16
    )
    assert collectives.seconds("all_reduce", megabyte, 1) == 0.0


def test_gemms_without_a_table_run_at_the_peak():
    gemms = GemmTimes(figures_only_system(), "bf16")
    assert not gemms.measured
    assert gemms.seconds(1024, 2048, 512) == pytest.approx(2 * 1024 * 2048 * 512 / 100e12)


@pytest.mark.skipif(not A100_SYSTEM.exists(), reason="AIConfigurator tables not in ../shared/data")
def test_measured_tables_give_back_their_own_points():
    from profcast.distributed.system import read_gpu_system

    system = read_gpu_system(A100_SYSTEM)
    table = pd.read_parquet(system.gemm_table)
    row = table[(table.m == 1024) & (table.n == 4096) & (table.k == 1024)].iloc[0]
    assert GemmTimes(system, "bf16").seconds(1024, 4096, 1024) == pytest.approx(row.latency * 1e-3, rel=1e-6)
    nccl = pd.read_parquet(system.nccl_table)
    point = nccl[(nccl.op_name == "all_reduce") & (nccl.num_gpus == 8) & (nccl.nccl_dtype == "half")].iloc[-3]
    collectives = Collectives(system)
    assert collectives.seconds("all_reduce", point.message_size, 8) == pytest.approx(point.latency * 1e-3, rel=1e-6)
    sizes = [2**p for p in range(20, 32)]  # from 1 MiB, where bandwidth, not launch noise, sets the time
    times = [collectives.seconds("all_reduce", s, 8) for s in sizes]
    assert times == sorted(times)  # bigger messages never take less time


def test_memory_follows_korthikanti_and_zero_shards_the_optimizer_state():
    plan = ParallelPlan(**PLAN)
    s, b, h, a, t = 16, 2, 64, 4, 2
    assert activation_bytes_per_layer(SMALL, plan) == pytest.approx(s * b * h * (10 + 24 / t + 5 * a * s / (h * t)))
    recomputed = ParallelPlan(**PLAN, recompute=True)
    assert activation_bytes_per_layer(SMALL, recomputed) == pytest.approx(2 * s * b * h)
    plain, sharded = memory_per_gpu(SMALL, plan), memory_per_gpu(SMALL, ParallelPlan(**PLAN, zero=1))
    assert sharded.optimizer_state == pytest.approx(plain.optimizer_state / 2)
    assert plain.optimizer_state == pytest.approx(6 * plain.weights)  # 12 bytes of fp32 state per 2-byte weight
    # first stage: min(pp, m) = 2 micro-batches in flight, each of 4 / 2 layers
    assert plain.activations == pytest.approx(2 * 2 * activation_bytes_per_layer(SMALL, plan))


def test_fitting_recovers_constants_that_made_the_times():
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([{k: v * rng.uniform(0.3, 3.0) for k, v in RAW.items()} for _ in range(60)])
    rows[["layers_on_stage", "microbatches", "pp", "p2p_sends"]] = rng.integers(1, 8, size=(60, 4))
    truth = UNIT | {"gemm": 1.4, "memory": 0.8, "dp": 0.3}
    measured = forecast_ms(rows, truth)
    fitted = fit_constants(rows, measured, UNIT, ("gemm", "memory", "dp"))
    assert [fitted[k] for k in ("gemm", "memory", "dp")] == pytest.approx([1.4, 0.8, 0.3], rel=1e-3)


def test_model_shape_rejects_heads_that_do_not_split_the_width():
    with pytest.raises(ProfcastError, match="not divisible by 5 attention heads"):
        model_shape_from_mapping({"n_embd": 64, "n_layer": 2, "n_head": 5, "vocab_size": 10}, "c.json")
    assert math.isclose(SMALL.head_dim, 16)


LABEL_HEADER = "op,target,meta,latency,fw_latency,bw_latency,acc_latency\n"


def write_label(folder, name: str, rows: str):
    """A NeuSight-style label file: embeddings (counted once) and the first layer's nodes."""
    path = folder / name
    path.write_text(LABEL_HEADER + rows)
    return path


def test_a_layer_profile_is_the_traced_layers_time_and_sets_the_layer_compute(tmp_path):
    from profcast.distributed.layer_profile import read_layer_profile
    from profcast.distributed.step import Planner

    rows = (
        "call_module,transformer.wte,{},5.0,2.0,3.0,0.0\n"  # not the layer: left out
        "call_module,transformer.h.0.attn.c_attn,{},1.5,0.5,1.0,0.0\n"
        "call_module,transformer.h.0.mlp.c_fc,{},2.5,1.0,1.5,0.0\n"
        "placeholder,transformer.h.0.x,{},9.0,9.0,0.0,0.0\n"  # not a timed node
    )
    profile = read_layer_profile(write_label(tmp_path, "small-train-16-2.csv", rows))
    assert (profile.layer_ms, profile.batch, profile.seq) == (4.0, 2, 16)
    traced = Planner(SMALL, figures_only_system(), UNIT, layer_profile=profile)
    modelled = Planner(SMALL, figures_only_system(), UNIT)
    own = ParallelPlan(1, 1, 1, 1, 2, 2, 16)  # the profiled layer itself: exactly its measured time
    assert terms.layer_gpu_ms(traced.raw_step(own), UNIT) == pytest.approx(4.0)
    split = ParallelPlan(2, 2, 1, 1, 2, 2, 16)  # another plan: the model's ratio to the profiled layer
    ratio = terms.layer_gpu_ms(modelled.raw_step(split), UNIT) / terms.layer_gpu_ms(modelled.raw_step(own), UNIT)
    assert terms.layer_gpu_ms(traced.raw_step(split), UNIT) == pytest.approx(4.0 * ratio)


def test_a_layer_profile_must_be_a_training_label_with_layer_nodes(tmp_path):
    from profcast.distributed.layer_profile import read_layer_profile

    with pytest.raises(ProfcastError, match="must be a training label"):
        read_layer_profile(write_label(tmp_path, "small-inf-16-2.csv", "call_module,transformer.h.0.a,{},1,1,0,0\n"))
    with pytest.raises(ProfcastError, match="no timed node of the first transformer layer"):
        read_layer_profile(write_label(tmp_path, "small-train-16-2.csv", "call_module,transformer.wte,{},1,1,0,0\n"))
    with pytest.raises(ProfcastError, match="not a NeuSight label name"):
        read_layer_profile(write_label(tmp_path, "trace.csv", ""))
