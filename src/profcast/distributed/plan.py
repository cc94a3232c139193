"""A parallel plan for a training run (GPUs, tensor/pipeline/data degrees, batches, precision) and its checks.

Every check that a framework would refuse at start-up is made here, before any forecast, as one line
naming the value at fault and what would be accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from profcast.distributed.model_config import BYTES_PER_ELEMENT, ModelShape
from profcast.errors import ProfcastError


@dataclass(frozen=True)
class ParallelPlan:
    """How one training step is split: ``gpus = tp * pp * dp``, ``global_batch = micro_batch * dp * microbatches``."""

    gpus: int
    tp: int
    pp: int
    dp: int
    micro_batch: int
    global_batch: int
    seq: int
    precision: str = "bf16"
    recompute: bool = False  # full activation recomputation: store each layer's input, redo its forward
    zero: int = 0  # ZeRO stage: 1 shards the optimizer state over the data-parallel GPUs

    @property
    def microbatches(self) -> int:
        """Micro-batches each pipeline runs per step (the 1F1B schedule's m)."""
        return self.global_batch // (self.micro_batch * self.dp)

    @property
    def tokens_per_step(self) -> int:
        """Tokens the whole step trains on."""
        return self.global_batch * self.seq

    def as_dict(self) -> dict:
        """The plan as plain values (for --json)."""
        return asdict(self)


def validate_plan(plan: ParallelPlan, shape: ModelShape) -> ParallelPlan:
    """Check a plan against itself and the model; return it, or raise one line naming the value at fault."""
    for name in ("gpus", "tp", "pp", "dp", "micro_batch", "global_batch", "seq"):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ProfcastError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")
    if plan.precision not in BYTES_PER_ELEMENT:
        raise ProfcastError(f"--precision {plan.precision!r} is not one of {', '.join(BYTES_PER_ELEMENT)}")
    if plan.zero not in (0, 1):
        raise ProfcastError(f"--zero {plan.zero!r}: only ZeRO stage 0 or 1 is modelled")
    if plan.tp * plan.pp * plan.dp != plan.gpus:
        raise ProfcastError(
            f"--tp {plan.tp} x --pp {plan.pp} x --dp {plan.dp} = {plan.tp * plan.pp * plan.dp} GPUs, "
            f"but --gpus is {plan.gpus}; the three degrees must multiply to the GPU count"
        )
    if shape.heads % plan.tp or shape.kv_heads % plan.tp:
        raise ProfcastError(
            f"--tp {plan.tp} does not divide the model's {shape.heads} attention heads"
            + (f" and {shape.kv_heads} KV heads" if shape.kv_heads != shape.heads else "")
            + "; tensor parallelism splits whole heads"
        )
    if shape.ffn % plan.tp:
        raise ProfcastError(f"--tp {plan.tp} does not divide the model's MLP width {shape.ffn}")
    if shape.layers % plan.pp:
        raise ProfcastError(
            f"--pp {plan.pp} does not divide the model's {shape.layers} layers; each stage needs as many"
        )
    if plan.global_batch % (plan.micro_batch * plan.dp):
        raise ProfcastError(
            f"--global-batch {plan.global_batch} is not a multiple of --micro-batch {plan.micro_batch} x --dp {plan.dp}"
            f" = {plan.micro_batch * plan.dp}"
        )
    if shape.max_positions and plan.seq > shape.max_positions:
        raise ProfcastError(f"--seq {plan.seq} is longer than the model's {shape.max_positions} positions")
    return plan
