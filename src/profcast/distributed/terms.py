"""The named terms of one training step, each its own function (after Calculon and vTrain).

A step of the 1F1B schedule on the slowest pipeline stage (the last: its layers plus the vocabulary
head) runs ``m`` micro-batches of forward and backward, then waits for the pipeline to drain:
Megatron's bubble is ``pp - 1`` stage times, ``(pp - 1) / m`` of the busy time (the other stages
lack the head, so their layers alone count). Each layer's time is
the GPU's (GEMMs from the measured table, memory-bound calls over bandwidth, TP all-reduces from the
NCCL table) or the host's, whichever is longer: an eager framework dispatches a layer's kernels in a
roughly fixed time, and a small layer waits on it. The two are joined by a smooth maximum
``(gpu^p + host^p)^(1/p)`` (fitted ``sharpness`` p). Every GPU then all-reduces its gradients over the
data-parallel group (the part not hidden behind the backward is a fitted fraction) and runs the optimizer.

The raw times (``raw_*``, seconds at unit constants) depend on the plan; the terms (milliseconds) apply
the fitted constants and work on floats or on whole columns of plans at once (``fit`` uses that).
"""

from __future__ import annotations

import numpy as np

from profcast.distributed.collectives import Collectives
from profcast.distributed.gemm_times import GemmTimes
from profcast.distributed.model_config import BYTES_PER_ELEMENT, LayerCalls, ModelShape, backward_gemms
from profcast.distributed.plan import ParallelPlan

OPTIMIZER_BYTES = {"mixed": 30.0, "fp32": 28.0}  # Adam: read param, grad, m, v; write param, m, v (+ half copy)
TP_ALL_REDUCES_PER_LAYER = 4  # Megatron: two in the forward (attention, MLP outputs), two in the backward


def raw_calls_seconds(calls: LayerCalls, gemms: GemmTimes, bandwidth: float, forwards: int = 1) -> dict:
    """GEMM, attention and memory-bound seconds of calls' forward(s) and backward for one micro-batch."""

    def forward_and_backward(group) -> float:
        forward = sum(gemms.seconds(g.m, g.n, g.k) for g in group)
        return forwards * forward + sum(gemms.seconds(b.m, b.n, b.k) for g in group for b in backward_gemms(g))

    gemm, attention = forward_and_backward(calls.gemms), forward_and_backward(calls.attention_gemms)
    memory = (forwards + 2) * calls.memory_bytes / bandwidth  # a backward moves about twice the forward's bytes
    return {"gemm": gemm, "attention": attention, "memory": memory}


def raw_tp_seconds(shape: ModelShape, plan: ParallelPlan, collectives: Collectives, gpus_per_node: int) -> float:
    """One layer's TP all-reduces for one micro-batch's forward and backward, seconds."""
    if plan.tp == 1:
        return 0.0
    message = plan.micro_batch * plan.seq * shape.hidden * BYTES_PER_ELEMENT[plan.precision]
    per_layer = TP_ALL_REDUCES_PER_LAYER + (2 if plan.recompute else 0)
    return per_layer * collectives.seconds("all_reduce", message, plan.tp, across_nodes=plan.tp > gpus_per_node)


def p2p_send_count(plan: ParallelPlan) -> int:
    """Sends on the critical path: one forward and one backward per hop and micro-batch beyond the first."""
    return 0 if plan.pp == 1 else 2 * (plan.microbatches + plan.pp - 2)


def raw_p2p_seconds(shape: ModelShape, plan: ParallelPlan, collectives: Collectives, gpus_per_node: int) -> float:
    """The critical path's activation and gradient sends between stages at the link's bandwidth, seconds."""
    if plan.pp == 1:
        return 0.0
    message = plan.micro_batch * plan.seq * shape.hidden * BYTES_PER_ELEMENT[plan.precision] / plan.tp
    across = plan.tp * plan.dp >= gpus_per_node  # neighbouring stages sit one tp*dp block of ranks apart
    return p2p_send_count(plan) * collectives.send_seconds(message, across_nodes=across)


def raw_dp_seconds(shape: ModelShape, plan: ParallelPlan, collectives: Collectives, gpus_per_node: int) -> float:
    """Gradient all-reduce over the DP group (ZeRO-1: reduce-scatter, then all-gather the weights), seconds."""
    if plan.dp == 1:
        return 0.0
    message = shape.stage_parameters(plan.tp, plan.pp) * BYTES_PER_ELEMENT[plan.precision]
    across = plan.tp * plan.dp > gpus_per_node
    if plan.zero == 1:
        scatter = collectives.seconds("reduce_scatter", message, plan.dp, across)
        return scatter + collectives.seconds("all_gather", message, plan.dp, across)
    return collectives.seconds("all_reduce", message, plan.dp, across)


def raw_optimizer_seconds(shape: ModelShape, plan: ParallelPlan, bandwidth: float) -> float:
    """Adam's update of this GPU's share of the weights, memory-bound, seconds (ZeRO-1 shares it over DP)."""
    parameters = shape.stage_parameters(plan.tp, plan.pp) / (plan.dp if plan.zero == 1 else 1)
    return parameters * OPTIMIZER_BYTES["fp32" if plan.precision == "fp32" else "mixed"] / bandwidth


def smooth_max(gpu, host, sharpness):
    """``(gpu^p + host^p)^(1/p)``: the longer of the two, rounded where they are close."""
    return (np.power(gpu, sharpness) + np.power(host, sharpness)) ** (1.0 / sharpness)


def layer_gpu_ms(raw: dict, c: dict):
    """One layer's GPU compute for one micro-batch, ms."""
    return 1e3 * (
        c["gemm"] * raw["layer_gemm"] + c["attention"] * raw["layer_attention"] + c["memory"] * raw["layer_memory"]
    )


def head_gpu_ms(raw: dict, c: dict):
    """The head's (final norm, logits, loss) GPU compute for one micro-batch, ms."""
    return 1e3 * (c["gemm"] * raw["head_gemm"] + c["memory"] * raw["head_memory"])


def layer_tp_ms(raw: dict, c: dict):
    """One layer's TP all-reduces for one micro-batch, ms."""
    return 1e3 * c["tp"] * raw["layer_tp"]


def layers_ms(raw: dict, c: dict):
    """One micro-batch's forward and backward through one stage's layers, GPU or host bound, ms."""
    layer = smooth_max(
        layer_gpu_ms(raw, c) + layer_tp_ms(raw, c), c["host_layer_ms"] * raw["host_passes"], c["sharpness"]
    )
    return raw["layers_on_stage"] * layer


def stage_ms(raw: dict, c: dict):
    """One micro-batch's forward and backward on the slowest stage (the last: layers and head), ms."""
    return layers_ms(raw, c) + smooth_max(head_gpu_ms(raw, c), c["host_head_ms"], c["sharpness"])


def compute(raw: dict, c: dict):
    """GPU compute of the ``m`` micro-batches on the slowest stage, ms (bubble not included)."""
    return raw["microbatches"] * (raw["layers_on_stage"] * layer_gpu_ms(raw, c) + head_gpu_ms(raw, c))


def tp_collectives(raw: dict, c: dict):
    """Tensor-parallel all-reduces of the ``m`` micro-batches, ms (Megatron waits on them)."""
    return raw["microbatches"] * raw["layers_on_stage"] * layer_tp_ms(raw, c)


def host_overhead(raw: dict, c: dict):
    """The time the GPU waits on the host's dispatch over the ``m`` micro-batches, ms."""
    busy = raw["layers_on_stage"] * (layer_gpu_ms(raw, c) + layer_tp_ms(raw, c)) + head_gpu_ms(raw, c)
    return raw["microbatches"] * (stage_ms(raw, c) - busy)


def pipeline_bubble(raw: dict, c: dict):
    """The 1F1B fill and drain: ``pp - 1`` times the other stages' layers (the head runs on the last only), ms."""
    return (raw["pp"] - 1) * layers_ms(raw, c)


def p2p_sends(raw: dict, c: dict):
    """Point-to-point sends between stages: bytes over the link plus a fitted wait per send, ms."""
    return 1e3 * c["p2p"] * raw["p2p"] + c["p2p_send_ms"] * raw["p2p_sends"]


def dp_allreduce(raw: dict, c: dict):
    """The part of the gradient all-reduce not hidden behind the backward (fitted exposed fraction), ms."""
    return 1e3 * c["dp"] * raw["dp"]


def optimizer(raw: dict, c: dict):
    """The optimizer step plus the framework's fixed per-step work, ms."""
    return 1e3 * c["optimizer"] * raw["optimizer"] + c["step_ms"]


TERMS = {
    "compute": compute,
    "host_overhead": host_overhead,
    "tp_collectives": tp_collectives,
    "pipeline_bubble": pipeline_bubble,
    "p2p_sends": p2p_sends,
    "dp_allreduce": dp_allreduce,
    "optimizer": optimizer,
}


def step_terms(raw: dict, c: dict) -> dict:
    """Every named term of the step, ms (floats, or arrays for columns of plans)."""
    return {name: term(raw, c) for name, term in TERMS.items()}
