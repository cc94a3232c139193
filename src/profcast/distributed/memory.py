"""Memory per GPU of a plan: weights, gradients, optimizer state, activations; does it fit.

Mixed precision keeps half-precision weights and gradients (2 + 2 bytes per parameter) and an fp32
master copy with Adam's two moments (12 bytes), which ZeRO stage 1 shards over the data-parallel GPUs;
fp32 training keeps 4 + 4 + 8. Activations per layer and micro-batch follow Korthikanti et al.
("Reducing Activation Recomputation in Large Transformer Models", 2022, eq. 2 with tensor
parallelism, no sequence parallelism): ``s b h (10 + 24 / t + 5 a s / (h t))`` bytes at 16-bit;
full recomputation keeps only each layer's input, ``2 s b h``. Under 1F1B the first stage holds
``min(pp, m)`` micro-batches in flight, each of ``layers / pp`` layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from profcast.distributed.model_config import BYTES_PER_ELEMENT, ModelShape
from profcast.distributed.plan import ParallelPlan

GIB = 2**30


@dataclass(frozen=True)
class MemoryPerGpu:
    """Bytes on the busiest GPU, by kind."""

    weights: float
    gradients: float
    optimizer_state: float
    activations: float
    reserved: float  # the framework's and NCCL's own buffers, from the GPU file when it gives them

    @property
    def total(self) -> float:
        """All of it, in bytes."""
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.reserved

    def as_gb(self) -> dict:
        """Each kind and the total in GB (10^9 bytes)."""
        kinds = ("weights", "gradients", "optimizer_state", "activations", "reserved")
        return {kind: getattr(self, kind) / 1e9 for kind in kinds} | {"total": self.total / 1e9}


def activation_bytes_per_layer(shape: ModelShape, plan: ParallelPlan) -> float:
    """Activations one layer keeps for its backward, for one micro-batch (Korthikanti et al., eq. 2)."""
    s, b, h, a, t = plan.seq, plan.micro_batch, shape.hidden, shape.heads, plan.tp
    scale = BYTES_PER_ELEMENT[plan.precision] / 2  # the paper counts 16-bit activations
    if plan.recompute:
        return 2 * s * b * h * scale
    mlp_widening = shape.ffn / (4 * h)  # the paper's 4h MLP; wider or gated MLPs keep more
    return s * b * h * (10 + 24 * mlp_widening / t + 5 * a * s / (h * t)) * scale


def memory_per_gpu(shape: ModelShape, plan: ParallelPlan, reserved_bytes: float = 0.0) -> MemoryPerGpu:
    """Memory of the first pipeline stage's GPU (it holds the most activations) under ``plan``."""
    parameters = shape.stage_parameters(plan.tp, plan.pp)
    if plan.precision == "fp32":
        weights, gradients, state = 4 * parameters, 4 * parameters, 8 * parameters
    else:
        weights, gradients, state = 2 * parameters, 2 * parameters, 12 * parameters
    if plan.zero == 1:
        state /= plan.dp
    in_flight = min(plan.pp, plan.microbatches)
    activations = in_flight * (shape.layers // plan.pp) * activation_bytes_per_layer(shape, plan)
    return MemoryPerGpu(weights, gradients, state, activations, reserved_bytes)
