"""Cost one workload's ops on one instance (roofline + launches + occupancy) and add repetition noise."""

import math

import numpy as np

from profcast.generate.hardware import (
    DISPATCH_US,
    HALF_SATURATION_PER_UNIT,
    KIND_EFFICIENCY,
    STEP_OVERHEAD_US,
    Hardware,
)
from profcast.generate.networks import CNN_MODELS, IMAGE_DATASETS, TEXT_DATASETS, Workload, workload_step_ops

# A tf_stats export covers a window of training steps; totals are over this many steps.
PROFILED_STEPS = 10
# Repetition noise (log-normal sigma): whole run, per op Type, per Operation row.
DEVICE_NOISE = (0.008, 0.015, 0.006)
HOST_NOISE = 0.10
IDLE_NOISE = 0.08
LATENCY_NOISE = 0.012


class StepModel:
    """One workload's op arrays, ready to be costed on any instance."""

    def __init__(self, workload: Workload):
        self.workload = workload
        rows = workload_step_ops(workload).rows
        self.types = [r[0] for r in rows]
        self.names = [r[1] for r in rows]
        self.flops = np.array([r[2] for r in rows])
        self.bytes = np.array([r[3] for r in rows])
        self.launches = np.array([r[4] for r in rows], dtype=float)
        self.work = np.array([r[5] for r in rows])
        self.kind_efficiency = np.array([KIND_EFFICIENCY[r[6]] for r in rows])
        type_order = sorted(set(self.types))
        self.type_ids = np.array([type_order.index(t) for t in self.types])
        self.n_types = len(type_order)
        if workload.model in CNN_MODELS:
            height, width, channels, _, self.train_examples = IMAGE_DATASETS[workload.dataset]
            self.input_bytes = workload.batchsize * (height * width * channels + 8)  # uint8 pixels + label
            self.sample_us = 0.2 + 0.0005 * height * width * channels  # normalise/shuffle/batch
        else:
            _, steps, _, self.train_examples = TEXT_DATASETS[workload.dataset]
            self.input_bytes = workload.batchsize * (4 * steps + 8)  # int32 tokens + label
            self.sample_us = 1.0 + 0.01 * steps

    def device_us(self, hw: Hardware) -> np.ndarray:
        """Per-step time (us) of each device op on ``hw`` (roofline + launches + occupancy)."""
        saturation = self.work / (self.work + hw.parallel_units * HALF_SATURATION_PER_UNIT[hw.is_gpu])
        compute_s = self.flops / (hw.peak_tflops * 1e12 * hw.compute_efficiency * self.kind_efficiency * saturation)
        memory_s = self.bytes / (hw.memory_gbs * 1e9 * hw.memory_efficiency * saturation)
        return self.launches * hw.launch_us + np.maximum(compute_s, memory_s) * 1e6

    def copy_us(self, hw: Hardware) -> float:
        """Per-step time (us) of the device-side receive of the input batch."""
        return hw.launch_us + self.input_bytes / (hw.copy_gbs * 1e9) * 1e6

    def host_ops(self, hw: Hardware) -> list[tuple[str, str, float, int]]:
        """Host ops over the profiled window: (Type, Operation, total us, occurrences)."""
        s, speed = PROFILED_STEPS, hw.host_speed
        return [
            ("IteratorGetNext", "IteratorGetNext", s * (18 + self.input_bytes / 2e4) / speed, s),
            (
                "Dataset",
                "Iterator::Model::Prefetch::BatchV2::Shuffle::TensorSlice",
                s * self.workload.batchsize * self.sample_us / speed,
                s,
            ),
            ("_Send", "IteratorGetNext/_Send", s * (15 + self.input_bytes / 6e3) / speed, s),
            ("LogicalAnd", "LogicalAnd", s * 5.5 / speed, s),
            ("Identity", "Identity", 1.5 / speed, 1),
            ("WriteSummary", "WriteSummary", 23 / speed, 1),
            ("FlushSummaryWriter", "FlushSummaryWriter", 43 / speed, 1),
        ]

    def step_us(self, hw: Hardware, device_busy_us: float) -> float:
        """Step time (us): the slowest of device work, kernel issue and input pipeline, plus overhead."""
        pipeline_us = self.workload.batchsize * self.sample_us / (min(hw.vcpus, 16) * hw.host_speed)
        # On a GPU the host issues kernels asynchronously: tiny kernels leave the GPU waiting.
        dispatch_us = self.launches.sum() * DISPATCH_US / hw.host_speed if hw.is_gpu else 0.0
        return max(device_busy_us, dispatch_us, pipeline_us) + STEP_OVERHEAD_US / hw.host_speed


def run_rows(model: StepModel, hw: Hardware, rng: np.random.Generator) -> tuple[list[tuple], dict]:
    """One run's op rows (where, Type, Operation, occurrences, total us, flops, bytes) and its latencies."""
    s = PROFILED_STEPS
    run_sigma, type_sigma, row_sigma = DEVICE_NOISE
    n = len(model.types)
    clean_us = model.device_us(hw)
    noise = (
        rng.normal(0, run_sigma)
        + rng.normal(0, type_sigma, model.n_types)[model.type_ids]
        + rng.normal(0, row_sigma, n)
    )
    device_total = s * clean_us * np.exp(noise)
    recv_total = s * model.copy_us(hw) * math.exp(rng.normal(0, type_sigma))
    send_total = s * 2 * hw.launch_us * math.exp(rng.normal(0, type_sigma))
    device_busy_step = (device_total.sum() + recv_total + send_total) / s
    clean_step_us = model.step_us(hw, device_busy_step)

    host = [(t, o, total * math.exp(rng.normal(0, HOST_NOISE)), occ) for t, o, total, occ in model.host_ops(hw)]
    host_busy = sum(total for _, _, total, _ in host)
    window = s * clean_step_us
    device_idle = max(window - s * device_busy_step, 0.02 * window) * math.exp(rng.normal(0, IDLE_NOISE))
    host_idle = max(window - host_busy, 0.05 * window) * math.exp(rng.normal(0, IDLE_NOISE))

    rows = [
        ("Device", t, o, s, total, f, b)
        for t, o, total, f, b in zip(model.types, model.names, device_total, model.flops * s, model.bytes * s)
    ]
    rows += [
        ("Device", "_Recv", "IteratorGetNext/_Recv", s, recv_total, 0.0, model.input_bytes * s),
        ("Device", "_Send", "metrics/_Send", 2 * s, send_total, 0.0, 16.0 * s),
        ("Device", "IDLE", "IDLE", 1, device_idle, 0.0, 0.0),
        ("Host", "IDLE", "IDLE", 1, host_idle, 0.0, 0.0),
    ]
    rows += [("Host", t, o, occ, total, 0.0, 0.0) for t, o, total, occ in host]

    batch_latency = clean_step_us / 1e6 * math.exp(rng.normal(0, LATENCY_NOISE))
    steps_per_epoch = math.ceil(model.train_examples / model.workload.batchsize)
    latency = {
        "batch_latency": round(batch_latency, 9),
        "epoch_latency": round(steps_per_epoch * batch_latency * math.exp(rng.normal(0, 0.005)), 6),
    }
    return rows, latency
