"""One plan's forecast: the named terms of its step, step time, tokens/s, MFU, memory, fit and cost.

``Planner`` holds what every plan of one model on one GPU kind shares (the GEMM and collective
tables, with their caches), so a search over many plans reads each table once.
"""

from __future__ import annotations

from dataclasses import dataclass

from profcast.distributed import terms
from profcast.distributed.collectives import Collectives
from profcast.distributed.constants import constants_for
from profcast.distributed.gemm_times import GemmTimes
from profcast.distributed.layer_profile import LayerProfile
from profcast.distributed.memory import MemoryPerGpu, memory_per_gpu
from profcast.distributed.model_config import ModelShape, head_calls, layer_calls
from profcast.distributed.plan import ParallelPlan
from profcast.distributed.system import GpuSystem


@dataclass(frozen=True)
class StepForecast:
    """What ``profcast plan`` answers for one plan."""

    plan: ParallelPlan
    terms: dict  # term name -> ms, in terms.TERMS order
    step_ms: float
    tokens_per_s: float
    mfu: float
    memory: MemoryPerGpu
    fits: bool
    memory_capacity_gb: float
    price_per_gpu_hour: float | None

    @property
    def hours_per_million_tokens(self) -> float:
        """Wall-clock hours to train on one million tokens."""
        return 1e6 / self.tokens_per_s / 3600

    @property
    def cost_per_million_tokens(self) -> float | None:
        """USD to train on one million tokens, or None without a price."""
        if self.price_per_gpu_hour is None:
            return None
        return self.hours_per_million_tokens * self.plan.gpus * self.price_per_gpu_hour

    def as_dict(self) -> dict:
        """The forecast as one JSON-ready object."""
        return {
            "plan": self.plan.as_dict(),
            "step_ms": self.step_ms,
            "tokens_per_s": self.tokens_per_s,
            "mfu": self.mfu,
            "memory_gb_per_gpu": self.memory.total / 1e9,
            "memory_gb": self.memory.as_gb(),
            "memory_capacity_gb": self.memory_capacity_gb,
            "fits": self.fits,
            "terms_ms": dict(self.terms),
            "hours_per_1m_tokens": self.hours_per_million_tokens,
            "price_per_gpu_hour": self.price_per_gpu_hour,
            "cost_per_1m_tokens": self.cost_per_million_tokens,
        }


class Planner:
    """Forecasts plans of one model on one GPU kind."""

    def __init__(
        self,
        shape: ModelShape,
        system: GpuSystem,
        constants: dict | None = None,
        price_per_gpu_hour=None,
        layer_profile: LayerProfile | None = None,
    ):
        self.shape, self.system = shape, system
        self.constants = constants  # None: the fitted constants of each plan's precision
        self.price_per_gpu_hour = price_per_gpu_hour
        self.layer_profile = layer_profile  # a measured layer: sets the level of the layer compute
        self.collectives = Collectives(system)
        self._gemms: dict = {}

    def gemm_times(self, precision: str) -> GemmTimes:
        """The GEMM times at ``precision`` (built once)."""
        if precision not in self._gemms:
            self._gemms[precision] = GemmTimes(self.system, precision)
        return self._gemms[precision]

    def raw_step(self, plan: ParallelPlan) -> dict:
        """The plan's raw times (seconds) and counts, as ``terms`` reads them; with a layer profile, the
        layer's compute is scaled so the profiled layer takes its measured time under the constants."""
        raw = self.modelled_raw_step(plan)
        if self.layer_profile is not None:
            profile, constants = self.layer_profile, self.constants or constants_for(plan.precision)
            profiled = ParallelPlan(1, 1, 1, 1, profile.batch, profile.batch, profile.seq, plan.precision)
            factor = profile.layer_ms / terms.layer_gpu_ms(self.modelled_raw_step(profiled), constants)
            for part in ("layer_gemm", "layer_attention", "layer_memory"):
                raw[part] *= factor
        return raw

    def modelled_raw_step(self, plan: ParallelPlan) -> dict:
        """The plan's raw times at unit constants (seconds) and counts, from the model alone."""
        shape, per_node, bandwidth = self.shape, self.system.gpus_per_node, self.system.memory_bandwidth
        gemms = self.gemm_times(plan.precision)
        forwards = 2 if plan.recompute else 1  # recomputation runs each layer's forward again before its backward
        layer = layer_calls(shape, plan.micro_batch, plan.seq, plan.tp, plan.precision)
        head = head_calls(shape, plan.micro_batch, plan.seq, plan.tp, plan.precision)
        layer_parts = terms.raw_calls_seconds(layer, gemms, bandwidth, forwards)
        head_parts = terms.raw_calls_seconds(head, gemms, bandwidth)
        return {
            "layer_gemm": layer_parts["gemm"],
            "layer_attention": layer_parts["attention"],
            "layer_memory": layer_parts["memory"],
            "layer_tp": terms.raw_tp_seconds(shape, plan, self.collectives, per_node),
            "head_gemm": head_parts["gemm"],
            "head_memory": head_parts["memory"],
            "host_passes": (forwards + 2) / 3,  # the host dispatches a forward and a backward twice its size
            "layers_on_stage": shape.layers // plan.pp,
            "microbatches": plan.microbatches,
            "pp": plan.pp,
            "p2p": terms.raw_p2p_seconds(shape, plan, self.collectives, per_node),
            "p2p_sends": terms.p2p_send_count(plan),
            "dp": terms.raw_dp_seconds(shape, plan, self.collectives, per_node),
            "optimizer": terms.raw_optimizer_seconds(shape, plan, bandwidth),
        }

    def forecast(self, plan: ParallelPlan) -> StepForecast:
        """The plan's step, throughput, memory, fit and cost."""
        constants = self.constants or constants_for(plan.precision)
        step_terms = {name: float(ms) for name, ms in terms.step_terms(self.raw_step(plan), constants).items()}
        step_ms = sum(step_terms.values())
        memory = memory_per_gpu(self.shape, plan, self.system.reserved_bytes)
        tokens_per_s = plan.tokens_per_step / (step_ms / 1e3)
        mfu = model_flops_per_step(self.shape, plan) / (step_ms / 1e3) / (plan.gpus * self.system.peak(plan.precision))
        return StepForecast(
            plan=plan,
            terms=step_terms,
            step_ms=step_ms,
            tokens_per_s=tokens_per_s,
            mfu=mfu,
            memory=memory,
            fits=memory.total <= self.system.memory_bytes,
            memory_capacity_gb=self.system.memory_bytes / 1e9,
            price_per_gpu_hour=self.price_per_gpu_hour,
        )


def model_flops_per_step(shape: ModelShape, plan: ParallelPlan) -> float:
    """The model's FLOPs of one step (forward and backward, 3x the forward; recomputation not counted)."""
    layer = layer_calls(shape, 1, plan.seq, 1, plan.precision)
    head = head_calls(shape, 1, plan.seq, 1, plan.precision)
    forward = shape.layers * layer.flops + head.flops
    return 3 * forward * plan.global_batch
