"""Measured distributed step times to score the plan model on: vTrain's single node and NeuSight's 4-GPU labels.

- vTrain (``vtrain/data/ground_truth_single.csv``): Megatron-DeepSpeed GPT on 8 x A100 SXM (NVLink),
  mixed precision, GPT-2's vocabulary (50,257), MLP 4 x hidden; one row per configuration.
- NeuSight (``neusight/scripts/asplos/label/<GPU>/<model>-train-<seq>-<batch>[-dp4|-tp4|-pp4_1].json``):
  HuggingFace GPT-2 Large and GPT-3 XL/2.7B in FP32 (PyTorch 2.1) on 4 x A100 SXM4 40GB or 4 x H100; the
  batch is the global batch; ``dp4`` gives each GPU a quarter, ``tp4`` and ``pp4_1`` run the whole batch
  as one micro-batch (``_1``). Files without a suffix are single-GPU steps (used to fit FP32's constants).
  The models' shapes are those the label files trace (hidden, heads, MLP width of layer 0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from profcast.distributed.model_config import ModelShape
from profcast.distributed.plan import ParallelPlan
from profcast.distributed.system import GpuSystem, read_gpu_system
from profcast.ingest.device_figures import read_device_figures

GPT2_VOCAB = 50257
VTRAIN_FILE = Path("vtrain") / "data" / "ground_truth_single.csv"
VTRAIN_COLUMNS = {
    "# GPUs": "gpus",
    "global batch": "global_batch",
    "micro batch": "micro_batch",
    "hidden size": "hidden",
    "attention heads": "heads",
    "# layers": "layers",
    "sequence length": "seq",
    "tensor parallelism": "tp",
    "data parallelism": "dp",
    "pipeline parallelism": "pp",
    "iteration time (ms)": "measured_ms",
}
NEUSIGHT_LABELS = Path("neusight") / "scripts" / "asplos" / "label"
NEUSIGHT_DEVICES = Path("neusight") / "scripts" / "asplos" / "data" / "device_configs"
# NeuSight's model names -> (hidden, layers, heads, MLP width), as the label files' layer 0 traces them.
NEUSIGHT_MODELS = {
    "gpt2_large": (1280, 36, 20, 5120),
    "gpt3_xl": (3072, 24, 24, 12288),
    "gpt3_27": (2560, 32, 32, 10240),
}
# NeuSight's GPU folder -> the AIConfigurator system whose node and NCCL tables stand in for it.
NEUSIGHT_SYSTEMS = {
    "NVIDIA_A100-SXM4-40GB": "a100_sxm.yaml",
    "NVIDIA_A100_80GB_PCIe": "a100_pcie.yaml",
    "NVIDIA_H100_80GB_HBM3": "h100_sxm.yaml",
}
LABEL_NAME = re.compile(
    r"^(?P<model>[a-z0-9_]+)-train-(?P<seq>\d+)-(?P<batch>\d+)(?:-(?P<split>dp4|tp4|pp4_1))?\.json$"
)


@dataclass(frozen=True)
class MeasuredStep:
    """One measured step: which model, on which GPUs, split how, and its time."""

    source: str
    config_id: str
    shape: ModelShape
    plan: ParallelPlan
    gpu: str
    measured_ms: float


def vtrain_steps(data_root) -> list[MeasuredStep]:
    """vTrain's 1,440 single-node rows, or none when the data is absent."""
    path = Path(data_root) / VTRAIN_FILE
    if not path.exists():
        return []
    table = pd.read_csv(path, encoding="utf-8-sig").rename(columns=VTRAIN_COLUMNS)
    steps = []
    for index, row in enumerate(table.itertuples(index=False)):
        shape = ModelShape(
            f"gpt-h{row.hidden}-l{row.layers}", row.hidden, row.layers, row.heads, row.heads, 4 * row.hidden, GPT2_VOCAB
        )
        plan = ParallelPlan(
            int(row.gpus),
            int(row.tp),
            int(row.pp),
            int(row.dp),
            int(row.micro_batch),
            int(row.global_batch),
            int(row.seq),
        )
        steps.append(MeasuredStep("vtrain", f"row{index}", shape, plan, "a100_sxm", float(row.measured_ms)))
    return steps


def neusight_steps(data_root, distributed: bool = True) -> list[MeasuredStep]:
    """NeuSight's GPT training labels: the 4-GPU ones (``distributed``) or the single-GPU ones."""
    steps = []
    for path in sorted((Path(data_root) / NEUSIGHT_LABELS).glob("*/*-train-*.json")):
        match, gpu = LABEL_NAME.match(path.name), path.parent.name
        if not match or match["model"] not in NEUSIGHT_MODELS or gpu not in NEUSIGHT_SYSTEMS:
            continue
        if bool(match["split"]) != distributed:
            continue
        hidden, layers, heads, ffn = NEUSIGHT_MODELS[match["model"]]
        shape = ModelShape(match["model"], hidden, layers, heads, heads, ffn, GPT2_VOCAB)
        batch, seq, split = int(match["batch"]), int(match["seq"]), match["split"]
        tp, pp, dp = {None: (1, 1, 1), "dp4": (1, 1, 4), "tp4": (4, 1, 1), "pp4_1": (1, 4, 1)}[split]
        micro = batch // dp
        plan = ParallelPlan(tp * pp * dp, tp, pp, dp, micro, batch, seq, precision="fp32")
        measured = float(json.loads(path.read_text())["e2e_latency"])
        steps.append(MeasuredStep("neusight", f"{gpu}/{path.stem}", shape, plan, gpu, measured))
    return steps


def neusight_system(data_root, gpu_folder: str) -> GpuSystem:
    """A NeuSight GPU as a plan sees it: its own figures (FP32 peak, bandwidth, memory) on AIConfigurator's node."""
    root = Path(data_root)
    system = read_gpu_system(root / "aiconfigurator" / "systems" / NEUSIGHT_SYSTEMS[gpu_folder])
    figures = read_device_figures(root / NEUSIGHT_DEVICES / f"{gpu_folder}.json")
    return replace(
        system,
        name=gpu_folder,
        peaks=system.peaks | {"fp32": figures.peak_flops(matrix=True)},
        memory_bandwidth=figures.bandwidth,
        memory_bytes=figures.memory_gb * 1e9,
    )
