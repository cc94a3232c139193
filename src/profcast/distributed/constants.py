"""The fitted constants of the step model: each scales one raw term (time at unit efficiency) to measured time.

Where each set comes from (``python -m benchmarks.distributed --fit`` prints them; benchmarks/results/
distributed.md gives the held-out errors):

- ``COMPUTE["mixed"]`` and ``COMMUNICATION``: fitted on all 1,440 rows of vTrain's single-node ground truth
  (Megatron-DeepSpeed GPT, 8 x A100 SXM, mixed precision) against AIConfigurator's measured A100 GEMM
  and NCCL tables. The benchmark also fits them leaving one model size out at a time and scores the
  held-out size, which is the error it reports.
- ``COMPUTE["fp32"]``: fitted on NeuSight's single-GPU training steps (GPT-2 Large, GPT-3 XL and 2.7B,
  FP32, A100 80GB PCIe and H100), never on the distributed steps it is scored on.

``gemm``, ``attention`` and ``memory`` scale the table, roofline or bytes-over-bandwidth time (1 /
efficiency); ``host_layer_ms`` and ``host_head_ms`` are the host's dispatch time of one layer's (the
head's) forward and backward, joined to the GPU's time by a smooth maximum of ``sharpness``; ``tp``,
``p2p`` and ``dp`` scale the collective times (``p2p_send_ms``: a wait per pipeline send; ``dp``: the
exposed fraction of the gradient all-reduce); ``optimizer`` scales the Adam update's bytes over
bandwidth; ``step_ms`` is fixed work per step. The values below are the benchmark's fits on all rows,
rounded to four figures.
"""

from __future__ import annotations

COMPUTE_NAMES = ("gemm", "attention", "memory", "host_layer_ms", "host_head_ms", "sharpness")
COMMUNICATION_NAMES = ("tp", "p2p", "p2p_send_ms", "dp", "optimizer", "step_ms")
NAMES = COMPUTE_NAMES + COMMUNICATION_NAMES
COMPUTE = {
    "mixed": {
        "gemm": 1.401,
        "attention": 1.0,  # held at the measured table's time, not fitted (benchmarks/distributed.py says why)
        "memory": 1.370,
        "host_layer_ms": 3.191,
        "host_head_ms": 3.619,
        "sharpness": 2.999,
    },
    "fp32": {
        "gemm": 0.4236,
        "attention": 7.896,
        "memory": 3.331,
        "host_layer_ms": 3.173,
        "host_head_ms": 2.0,  # not fitted (single-GPU steps do not separate it from the layers)
        "sharpness": 3.0,  # not fitted
    },
}
COMMUNICATION = {"tp": 0.5829, "p2p": 5.0, "p2p_send_ms": 0.0, "dp": 0.2603, "optimizer": 0.0794, "step_ms": 6.089}


def precision_group(precision: str) -> str:
    """Which compute constants a precision takes: fp32's, or mixed precision's (bf16, fp16)."""
    return "fp32" if precision == "fp32" else "mixed"


def constants_for(precision: str) -> dict:
    """Every constant the step model needs at ``precision``."""
    return COMPUTE[precision_group(precision)] | COMMUNICATION
