"""Generate a physically grounded stand-in for the PROFET profiling study as raw tf_stats exports.

Nothing here is measured. Each op's time comes from the model's real layer shapes (FLOPs, bytes
moved, kernel launches) and each instance's public hardware figures, through a roofline with a
launch overhead and an occupancy ramp:

    time = launches * launch_overhead + max(flops / (peak * efficiency * saturation),
                                            bytes / (bandwidth * efficiency * saturation))
    saturation = work / (work + half_saturation_work)

so small ops are latency-bound, large ones throughput-bound, and the anchor->target ratio of an
op depends on the op and its size. Repetitions differ by multiplicative log-normal noise.
The output is what ``src.tfstats.read_tfstats_tree`` reads (own file naming + latency sidecar).

    python -m src.generate --out DIR [--seed N] [--instances p3.2xlarge,g4dn.xlarge]
"""

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.errors import ProfcastError
from src.tfstats import SIDECAR_SUFFIX

# Bump when the generated values change, so cached copies of older output are not reused.
GENERATOR_VERSION = 1

EXPERIMENTS = ["exp1", "exp2", "exp3"]
# As in the original study, the smallest instance was only profiled in the first repetition.
ONLY_IN_FIRST_EXPERIMENT = {"g3s.xlarge"}
BATCH_SIZES = [16, 32, 64, 128, 256]
CNN_MODELS = ["lenet5", "vggsmall", "resnetsmall"]
RNN_MODELS = ["lstm", "gru", "bilstm"]
OPTIMIZER = {"cnn": "sgd", "rnn": "adam"}
# A tf_stats export covers a window of training steps; totals are over this many steps.
PROFILED_STEPS = 10
FLOAT_BYTES = 4

# name: (height, width, channels, classes, training examples)
IMAGE_DATASETS = {
    "mnist": (28, 28, 1, 10, 60_000),
    "fmnist": (28, 28, 1, 10, 60_000),
    "cifar10": (32, 32, 3, 10, 50_000),
}
# name: (vocabulary, sequence length, classes, training examples)
TEXT_DATASETS = {
    "imdb": (20_000, 200, 2, 25_000),
    "reuters": (10_000, 100, 46, 8_982),
    "agnews": (20_000, 64, 4, 120_000),
}
EMBEDDING_DIM = 128
RNN_UNITS = 128


@dataclass(frozen=True)
class Hardware:
    """One instance's figures. Peak, bandwidth, SM/core and vCPU counts are from public spec
    sheets; efficiencies and overheads are assumptions, set so that the instances' relative
    speeds roughly follow those measured in the PROFET study (p3 >> g4dn > g3s > p2)."""

    accelerator: str
    peak_tflops: float  # FP32 peak of the one GPU (or of the vCPUs' AVX-512 units)
    memory_gbs: float  # GPU memory (or DRAM share) bandwidth
    parallel_units: int  # SMs on a GPU, physical cores on a CPU
    launch_us: float  # fixed cost per kernel (GPU launch / CPU op dispatch + thread fan-out)
    compute_efficiency: float  # sustained fraction of peak on large GEMM/conv
    memory_efficiency: float  # sustained fraction of bandwidth on streaming ops
    copy_gbs: float  # host->device input copy (PCIe; DRAM copy on CPU-only instances)
    vcpus: int
    host_speed: float  # single-thread speed of the host CPU relative to a 2.3 GHz Broadwell
    is_gpu: bool = True


def _avx512_tflops(vcpus: int, ghz: float = 2.5) -> float:
    # vCPUs are hyperthreads: vcpus/2 cores x 2 FMA units x 16 FP32 lanes x 2 FLOP per FMA,
    # at the all-core AVX-512 clock (lower than the advertised 3.0-3.6 GHz).
    return vcpus / 2 * 2 * 16 * 2 * ghz / 1e3


INSTANCES = {
    # NVIDIA Tesla M60: one of the board's two GPUs (16 SMs, 4.8 TFLOPS, 160 GB/s).
    "g3s.xlarge": Hardware("Tesla M60", 4.8, 160, 16, 3.5, 0.50, 0.65, 10, 4, 1.0),
    "g3.4xlarge": Hardware("Tesla M60", 4.8, 160, 16, 3.5, 0.50, 0.65, 10, 16, 1.0),
    # NVIDIA T4 (40 SMs, 8.1 TFLOPS, 320 GB/s); its 70 W cap keeps it well below peak.
    "g4dn.xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 4, 1.2),
    "g4dn.4xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 16, 1.2),
    "g4dn.16xlarge": Hardware("Tesla T4", 8.1, 320, 40, 2.8, 0.42, 0.65, 12, 64, 1.2),
    # NVIDIA K80: one of the board's two GPUs (13 SMs, 4.4 TFLOPS boost, 240 GB/s).
    "p2.xlarge": Hardware("Tesla K80", 4.37, 240, 13, 5.0, 0.32, 0.50, 10, 4, 1.0),
    # NVIDIA V100 SXM2 16 GB (80 SMs, 15.7 TFLOPS, 900 GB/s).
    "p3.2xlarge": Hardware("Tesla V100", 15.7, 900, 80, 2.5, 0.70, 0.80, 11, 8, 1.0),
    # Intel Xeon Platinum 8124M/8275CL (AVX-512), no GPU; DRAM bandwidth is the instance's
    # share of two 6-channel DDR4 sockets (an estimate, not a spec-sheet figure).
    "c5.4xlarge": Hardware("Xeon (8 cores)", _avx512_tflops(16), 60, 8, 6.0, 0.35, 0.60, 60, 16, 1.3, False),
    "c5.9xlarge": Hardware("Xeon (18 cores)", _avx512_tflops(36), 120, 18, 8.0, 0.35, 0.60, 120, 36, 1.3, False),
    "c5.18xlarge": Hardware("Xeon (36 cores)", _avx512_tflops(72), 240, 36, 11.0, 0.35, 0.60, 240, 72, 1.3, False),
}

# Work items per SM a kernel needs to reach half the peak rate (a GPU hides latency with many
# resident threads); a CPU core reaches it with a few cache lines of work.
HALF_SATURATION_PER_UNIT = {True: 1024, False: 256}
# Backprop-filter reduces over the batch and runs below forward-conv efficiency; a recurrent
# step is a chain of small GEMMs.
KIND_EFFICIENCY = {"conv": 1.0, "conv_filter": 0.85, "gemm": 1.0, "rnn": 0.6, "memory": 1.0}
# Host-side cost (us) of issuing one GPU kernel (TF executor + CUDA launch) on a 1.0-speed host.
DISPATCH_US = 6.0
STEP_OVERHEAD_US = 1200.0  # Keras train_step: Python, host/device sync, metrics readback
# Repetition noise (log-normal sigma): whole run, per op Type, per Operation row.
DEVICE_NOISE = (0.008, 0.015, 0.006)
HOST_NOISE = 0.10
IDLE_NOISE = 0.08
LATENCY_NOISE = 0.012

TFSTATS_HEADER = [
    "Rank", "Host/device", "Type", "Operation", "#Occurrences", "Total time (us)",
    "Avg. time (us)", "Total self-time (us)", "Avg. self-time (us)",
    "Total self-time on Device (%)", "Cumulative total-self time on Device (%)",
    "Total self-time on Host (%)", "Cumulative total-self time on Host (%)",
    "Measured GFLOPs/Sec", "Measured Memory BW (GBytes/Sec)",
    "Operational Intensity (FLOPs/Byte)", "Bound by",
]


@dataclass(frozen=True)
class Workload:
    """What is trained: the run keys apart from where and which repetition."""

    dataset: str
    model: str
    optimizer: str
    batchsize: int


class DeviceOps:
    """The device ops of one training step, built layer by layer from real tensor shapes."""

    def __init__(self):
        self.rows: list[tuple] = []  # (Type, Operation, flops, bytes, launches, work, kind)

    def add(self, op_type, name, flops, nbytes, launches=1, work=None, kind="memory"):
        """Record one op; ``work`` is its parallel work items (defaults to bytes / 4)."""
        work = nbytes / FLOAT_BYTES if work is None else work
        self.rows.append((op_type, name, float(flops), float(nbytes), launches, float(max(work, 1)), kind))

    def elementwise(self, op_type, name, elements, reads=1, writes=1, launches=1):
        """A streaming op touching ``elements`` values ``reads`` + ``writes`` times."""
        self.add(op_type, name, elements, FLOAT_BYTES * elements * (reads + writes), launches, elements)

    def update(self, optimizer, name, params):
        """Apply one variable's gradient: SGD reads var+grad and writes var; Adam also m and v."""
        if optimizer == "adam":
            self.add("ResourceApplyAdam", f"{name}/ResourceApplyAdam", 10 * params, 28 * params, 1, params)
        else:
            self.add("ResourceApplyGradientDescent", f"{name}/ResourceApplyGradientDescent",
                     2 * params, 12 * params, 1, params)


def _conv(ops, backward, updates, scope, n, h, w, c_in, c_out, k, stride, bias, first, padding="same"):
    """Conv2D forward/backward/update rows; returns the output height, width and element count."""
    if padding == "same":
        ho, wo = math.ceil(h / stride), math.ceil(w / stride)
    else:
        ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    inputs, outputs, weights = n * h * w * c_in, n * ho * wo * c_out, k * k * c_in * c_out
    flops = 2 * outputs * k * k * c_in
    nbytes = FLOAT_BYTES * (inputs + outputs + weights)
    ops.add("Conv2D", f"{scope}/Conv2D", flops, nbytes, 1, outputs, "conv")
    backward.append(("Conv2DBackpropFilter", f"{scope}/Conv2D/Conv2DBackpropFilter", flops, nbytes, 2, outputs, "conv_filter"))
    if not first:  # nothing upstream of the first layer needs an input gradient
        backward.append(("Conv2DBackpropInput", f"{scope}/Conv2D/Conv2DBackpropInput", flops, nbytes, 1, inputs, "conv"))
    updates.append((f"{scope}/kernel", weights))
    if bias:
        ops.elementwise("BiasAdd", f"{scope}/BiasAdd", outputs)
        backward.append(("BiasAddGrad", f"{scope}/BiasAdd/BiasAddGrad", outputs, FLOAT_BYTES * outputs, 1, outputs, "memory"))
        updates.append((f"{scope}/bias", c_out))
    return ho, wo, outputs


def _relu(ops, backward, scope, elements):
    ops.elementwise("Relu", f"{scope}/Relu", elements)
    backward.append(("ReluGrad", f"{scope}/Relu/ReluGrad", elements, 3 * FLOAT_BYTES * elements, 1, elements, "memory"))


def _maxpool(ops, backward, scope, n, h, w, c):
    ho, wo = h // 2, w // 2
    inputs, outputs = n * h * w * c, n * ho * wo * c
    ops.add("MaxPool", f"{scope}/MaxPool", inputs, FLOAT_BYTES * (inputs + outputs), 1, outputs)
    backward.append(("MaxPoolGrad", f"{scope}/MaxPool/MaxPoolGrad", inputs,
                     2 * FLOAT_BYTES * (inputs + outputs), 2, inputs, "memory"))
    return ho, wo


def _batchnorm(ops, backward, updates, scope, elements, channels):
    # Training-mode batch norm makes two passes (statistics, normalise) each way.
    ops.add("FusedBatchNormV3", f"{scope}/FusedBatchNormV3", 5 * elements, 3 * FLOAT_BYTES * elements, 2, elements)
    backward.append(("FusedBatchNormGradV3", f"{scope}/FusedBatchNormGradV3", 8 * elements,
                     4 * FLOAT_BYTES * elements, 2, elements, "memory"))
    updates.extend([(f"{scope}/gamma", channels), (f"{scope}/beta", channels)])


def _dense(ops, backward, updates, scope, n, d_in, d_out):
    flops = 2 * n * d_in * d_out
    nbytes = FLOAT_BYTES * (n * d_in + d_in * d_out + n * d_out)
    ops.add("MatMul", f"{scope}/MatMul", flops, nbytes, 1, n * d_out, "gemm")
    ops.elementwise("BiasAdd", f"{scope}/BiasAdd", n * d_out)
    backward.append(("BiasAddGrad", f"{scope}/BiasAdd/BiasAddGrad", n * d_out, FLOAT_BYTES * n * d_out, 1, n * d_out, "memory"))
    backward.append(("MatMul", f"{scope}/MatMul/MatMul_1", flops, nbytes, 1, d_in * d_out, "gemm"))
    backward.append(("MatMul", f"{scope}/MatMul/MatMul", flops, nbytes, 1, n * d_in, "gemm"))
    updates.extend([(f"{scope}/kernel", d_in * d_out), (f"{scope}/bias", d_out)])


def _cnn_step(model, dataset, n, optimizer) -> DeviceOps:
    """Forward, backward and SGD update of one CNN step on a batch of ``n`` images."""
    h, w, c, classes, _ = IMAGE_DATASETS[dataset]
    ops, backward, updates = DeviceOps(), [], []
    ops.elementwise("Cast", "sequential/Cast", n * h * w * c, reads=0.25)  # uint8 -> float32
    # TF's layout optimizer turns the NHWC Keras input into cuDNN's NCHW and back.
    ops.elementwise("Transpose", "sequential/TransposeNHWCToNCHW-LayoutOptimizer", n * h * w * c)
    if model == "lenet5":
        h, w, size = _conv(ops, backward, updates, "sequential/conv2d", n, h, w, c, 6, 5, 1, True, True)
        _relu(ops, backward, "sequential/conv2d", size)
        h, w = _maxpool(ops, backward, "sequential/max_pooling2d", n, h, w, 6)
        h, w, size = _conv(ops, backward, updates, "sequential/conv2d_1", n, h, w, 6, 16, 5, 1, True, False, "valid")
        _relu(ops, backward, "sequential/conv2d_1", size)
        h, w = _maxpool(ops, backward, "sequential/max_pooling2d_1", n, h, w, 16)
        channels, widths = 16, [120, 84]
    elif model == "vggsmall":
        channels, first = c, True
        for block, width in enumerate([32, 64, 128]):
            for i in range(2):
                scope = f"sequential/block{block + 1}_conv{i + 1}"
                h, w, size = _conv(ops, backward, updates, scope, n, h, w, channels, width, 3, 1, True, first)
                _relu(ops, backward, scope, size)
                channels, first = width, False
            h, w = _maxpool(ops, backward, f"sequential/block{block + 1}_pool", n, h, w, channels)
        widths = [256]
    elif model == "resnetsmall":
        h, w, channels = _resnet_body(ops, backward, updates, n, h, w, c)
        widths = []
    else:
        raise ProfcastError(f"unknown CNN model {model!r}; expected one of {CNN_MODELS}")
    ops.elementwise("Transpose", "sequential/TransposeNCHWToNHWC-LayoutOptimizer", n * h * w * channels)
    if model == "resnetsmall":  # global average pooling instead of flatten
        features = channels
        ops.add("Mean", "model/global_average_pooling2d/Mean", n * h * w * channels, FLOAT_BYTES * n * h * w * channels)
        backward.append(("Tile", "model/global_average_pooling2d/Mean_grad/Tile", 0, 2 * FLOAT_BYTES * n * h * w * channels, 1, n * h * w * channels, "memory"))
        backward.append(("RealDiv", "model/global_average_pooling2d/Mean_grad/truediv", n * h * w * channels, 2 * FLOAT_BYTES * n * h * w * channels, 1, n * h * w * channels, "memory"))
    else:
        features = h * w * channels
    for i, width in enumerate(widths):
        scope = f"sequential/dense{'' if i == 0 else f'_{i}'}"
        _dense(ops, backward, updates, scope, n, features, width)
        _relu(ops, backward, scope, n * width)
        features = width
    _dense(ops, backward, updates, "sequential/logits", n, features, classes)
    _finish_step(ops, backward, updates, n, classes, optimizer)
    return ops


def _resnet_body(ops, backward, updates, n, h, w, c):
    """A small CIFAR-style ResNet: stem, max pool, three one-block stages with projections."""
    h, w, size = _conv(ops, backward, updates, "model/stem_conv", n, h, w, c, 16, 3, 1, False, True)
    _batchnorm(ops, backward, updates, "model/stem_bn", size, 16)
    _relu(ops, backward, "model/stem_relu", size)
    h, w = _maxpool(ops, backward, "model/stem_pool", n, h, w, 16)
    channels = 16
    for stage, (width, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        scope = f"model/stage{stage + 1}"
        in_h, in_w, in_channels = h, w, channels
        h, w, size = _conv(ops, backward, updates, f"{scope}_conv1", n, in_h, in_w, in_channels, width, 3, stride, False, False)
        _batchnorm(ops, backward, updates, f"{scope}_bn1", size, width)
        _relu(ops, backward, f"{scope}_relu1", size)
        h, w, size = _conv(ops, backward, updates, f"{scope}_conv2", n, h, w, width, width, 3, 1, False, False)
        _batchnorm(ops, backward, updates, f"{scope}_bn2", size, width)
        if stride != 1 or in_channels != width:
            _conv(ops, backward, updates, f"{scope}_shortcut", n, in_h, in_w, in_channels, width, 1, stride, False, False)
            _batchnorm(ops, backward, updates, f"{scope}_shortcut_bn", size, width)
        ops.elementwise("AddV2", f"{scope}_add/add", size, reads=2)
        # The block input's gradient arrives from both branches and is summed.
        block_input = n * in_h * in_w * in_channels
        backward.append(("AddN", f"{scope}_conv1/AddN", block_input, 3 * FLOAT_BYTES * block_input, 1, block_input, "memory"))
        _relu(ops, backward, f"{scope}_relu2", size)
        channels = width
    return h, w, channels


def _rnn_step(model, dataset, n, optimizer) -> DeviceOps:
    """Forward, backward and Adam update of one text-classifier step (embedding, cuDNN RNN, dense)."""
    vocabulary, steps, classes, _ = TEXT_DATASETS[dataset]
    gates = {"lstm": 4, "gru": 3, "bilstm": 4}[model]
    directions = 2 if model == "bilstm" else 1
    e, hidden = EMBEDDING_DIM, RNN_UNITS
    ops, backward, updates = DeviceOps(), [], []
    tokens = n * steps
    ops.add("ResourceGather", "sequential/embedding/embedding_lookup", 0, FLOAT_BYTES * (2 * tokens * e + tokens), 1, tokens * e)
    backward.append(("UnsortedSegmentSum", "sequential/embedding/embedding_lookup_grad/UnsortedSegmentSum", tokens * e,
                     FLOAT_BYTES * (2 * tokens * e + vocabulary * e), 2, tokens * e, "memory"))
    updates.append(("sequential/embedding/embeddings", vocabulary * e))
    # cuDNN wants time-major input.
    ops.elementwise("Transpose", "sequential/rnn/transpose", tokens * e)
    backward.append(("Transpose", "sequential/rnn/transpose_grad/transpose", 0, 2 * FLOAT_BYTES * tokens * e, 1, tokens * e, "memory"))
    weights = directions * ((e + hidden) * gates * hidden + 2 * gates * hidden)
    flops = directions * (2 * tokens * (e + hidden) * gates * hidden + 5 * tokens * gates * hidden)
    nbytes = FLOAT_BYTES * (weights + tokens * e + directions * tokens * (hidden + gates * hidden))
    # Each time step waits for the previous one, so only one step's gates run in parallel.
    per_step_work = n * gates * hidden * directions
    ops.add("CudnnRNN", "sequential/rnn/CudnnRNN", flops, nbytes, directions * (1 + steps), per_step_work, "rnn")
    backward.append(("CudnnRNNBackprop", "sequential/rnn/CudnnRNN/CudnnRNNBackprop", 2 * flops, 1.5 * nbytes,
                     directions * (2 + 2 * steps), per_step_work, "rnn"))
    for d in range(directions):
        scope = f"sequential/rnn/{'backward' if d else 'forward'}_cell"
        updates.extend([(f"{scope}/kernel", e * gates * hidden), (f"{scope}/recurrent_kernel", hidden * gates * hidden),
                        (f"{scope}/bias", 2 * gates * hidden)])
    features = directions * hidden
    ops.elementwise("StridedSlice", "sequential/rnn/strided_slice", n * features)
    backward.append(("StridedSliceGrad", "sequential/rnn/strided_slice_grad/StridedSliceGrad", 0,
                     FLOAT_BYTES * (tokens * features + n * features), 1, tokens * features, "memory"))
    if directions == 2:
        ops.elementwise("ConcatV2", "sequential/bidirectional/concat", n * features)
        backward.append(("Slice", "sequential/bidirectional/concat_grad/Slice", 0, 2 * FLOAT_BYTES * n * features, 2, n * features, "memory"))
    _dense(ops, backward, updates, "sequential/logits", n, features, classes)
    _finish_step(ops, backward, updates, n, classes, optimizer)
    return ops


def _finish_step(ops, backward, updates, n, classes, optimizer):
    """Loss, metrics, then the backward ops in reverse layer order, then the optimizer updates."""
    logits = n * classes
    ops.elementwise("Softmax", "sequential/logits/Softmax", logits)
    ops.add("SoftmaxCrossEntropyWithLogits", "categorical_crossentropy/SoftmaxCrossEntropyWithLogits",
            5 * logits, 4 * FLOAT_BYTES * logits, 1, logits)
    ops.elementwise("Mul", "categorical_crossentropy/weighted_loss/Mul", n)
    ops.elementwise("Sum", "categorical_crossentropy/weighted_loss/Sum", n, writes=0)
    ops.elementwise("DivNoNan", "categorical_crossentropy/weighted_loss/value", 1, reads=2)
    for i in range(2):  # predictions and labels
        ops.elementwise("ArgMax", f"metrics/accuracy/ArgMax{'_1' if i else ''}", logits, writes=0)
    ops.elementwise("Equal", "metrics/accuracy/Equal", n, reads=2)
    ops.elementwise("Cast", "metrics/accuracy/Cast", n)
    ops.elementwise("Tile", "gradient_tape/categorical_crossentropy/weighted_loss/Tile", n)
    for name in ["loss/AssignAddVariableOp", "loss/AssignAddVariableOp_1", "metrics/accuracy/AssignAddVariableOp",
                 "metrics/accuracy/AssignAddVariableOp_1", f"{optimizer}/AssignAddVariableOp"]:
        ops.elementwise("AssignAddVariableOp", name, 1, reads=2)
    for row in reversed(backward):
        ops.add(*row)
    for name, params in updates:
        ops.update(optimizer, name, params)


def workload_step_ops(workload: Workload) -> DeviceOps:
    """All device ops of one training step of ``workload`` with their FLOPs, bytes and launches."""
    if workload.model in CNN_MODELS:
        return _cnn_step(workload.model, workload.dataset, workload.batchsize, workload.optimizer)
    if workload.model in RNN_MODELS:
        return _rnn_step(workload.model, workload.dataset, workload.batchsize, workload.optimizer)
    raise ProfcastError(f"unknown model {workload.model!r}; expected one of {CNN_MODELS + RNN_MODELS}")


def workloads() -> list[Workload]:
    """The 90 workloads every instance runs per repetition: 45 CNN and 45 RNN."""
    cnn = [Workload(d, m, OPTIMIZER["cnn"], b) for m in CNN_MODELS for d in IMAGE_DATASETS for b in BATCH_SIZES]
    rnn = [Workload(d, m, OPTIMIZER["rnn"], b) for m in RNN_MODELS for d in TEXT_DATASETS for b in BATCH_SIZES]
    return cnn + rnn


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
            ("Dataset", "Iterator::Model::Prefetch::BatchV2::Shuffle::TensorSlice",
             s * self.workload.batchsize * self.sample_us / speed, s),
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


def _run_export(model: StepModel, hw: Hardware, rng: np.random.Generator) -> tuple[str, dict]:
    """One run's tf_stats CSV text and its latency sidecar content."""
    s = PROFILED_STEPS
    run_sigma, type_sigma, row_sigma = DEVICE_NOISE
    n = len(model.types)
    clean_us = model.device_us(hw)
    noise = rng.normal(0, run_sigma) + rng.normal(0, type_sigma, model.n_types)[model.type_ids] + rng.normal(0, row_sigma, n)
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

    rows = [("Device", t, o, s, total, f, b) for t, o, total, f, b in
            zip(model.types, model.names, device_total, model.flops * s, model.bytes * s)]
    rows += [("Device", "_Recv", "IteratorGetNext/_Recv", s, recv_total, 0.0, model.input_bytes * s),
             ("Device", "_Send", "metrics/_Send", 2 * s, send_total, 0.0, 16.0 * s),
             ("Device", "IDLE", "IDLE", 1, device_idle, 0.0, 0.0),
             ("Host", "IDLE", "IDLE", 1, host_idle, 0.0, 0.0)]
    rows += [("Host", t, o, occ, total, 0.0, 0.0) for t, o, total, occ in host]

    batch_latency = clean_step_us / 1e6 * math.exp(rng.normal(0, LATENCY_NOISE))
    steps_per_epoch = math.ceil(model.train_examples / model.workload.batchsize)
    latency = {"batch_latency": round(batch_latency, 9),
               "epoch_latency": round(steps_per_epoch * batch_latency * math.exp(rng.normal(0, 0.005)), 6)}
    return _tfstats_csv(rows), latency


def _tfstats_csv(rows) -> str:
    """Format rows (where, Type, Operation, occurrences, total us, flops, bytes) as a tf_stats export."""
    rows = sorted(rows, key=lambda r: -r[4])  # TensorBoard ranks ops by self-time
    totals = {"Device": sum(r[4] for r in rows if r[0] == "Device"), "Host": sum(r[4] for r in rows if r[0] == "Host")}
    cumulative = {"Device": 0.0, "Host": 0.0}
    lines = [",".join(f'"{c}"' for c in TFSTATS_HEADER)]
    for rank, (where, op_type, operation, occurrences, total, flops, nbytes) in enumerate(rows, start=1):
        share = total / totals[where] if totals[where] else 0.0
        cumulative[where] += share
        device = (share, cumulative[where]) if where == "Device" else (0.0, 0.0)
        host = (share, cumulative[where]) if where == "Host" else (0.0, 0.0)
        seconds = total / 1e6
        gflops = flops / seconds / 1e9 if seconds else 0.0
        bandwidth = nbytes / seconds / 1e9 if seconds else 0.0
        intensity = flops / nbytes if nbytes else 0.0
        bound = "Unknown" if not nbytes else ("Compute" if intensity > 20 else "Memory")
        avg = total / occurrences
        lines.append(
            f'{rank},"{where}","{op_type}","{operation}",{occurrences},{total:.3f},{avg:.3f},{total:.3f},{avg:.3f},'
            f'{device[0]:.4f},{device[1]:.4f},{host[0]:.4f},{host[1]:.4f},{gflops:.3f},{bandwidth:.3f},{intensity:.3f},"{bound}"'
        )
    return "\n".join(lines) + "\n"


def run_file_name(workload: Workload) -> str:
    """Our own run-file name: ``<dataset>-<model>-<optimizer>-<batchsize>.csv``."""
    return f"{workload.dataset}-{workload.model}-{workload.optimizer}-{workload.batchsize}.csv"


def generate_tree(out_dir, seed: int = 0, instances=None) -> int:
    """Write the whole study (2,520 runs) as ``<out_dir>/<exp>/<instance>/<run>.csv`` + sidecars.

    Deterministic for a seed; ``instances`` limits it to some instances, whose files are then
    byte-identical to those of the whole study. Returns the number of tf_stats CSV files written.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ProfcastError(f"seed {seed!r} is not a non-negative integer")
    if isinstance(instances, str):
        instances = [instances]
    wanted = list(INSTANCES) if instances is None else list(instances)
    unknown = [name for name in wanted if name not in INSTANCES]
    if unknown or not wanted:
        problem = f"unknown instance(s) {unknown}" if unknown else "no instance given"
        raise ProfcastError(f"{problem}; expected one or more of {list(INSTANCES)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ProfcastError(f"{out_dir}: output folder is not empty; give a new or empty folder")
    models = [StepModel(w) for w in workloads()]
    written = 0
    for exp_index, exp_name in enumerate(EXPERIMENTS):
        for instance_index, (instance, hw) in enumerate(INSTANCES.items()):
            if instance not in wanted or (instance in ONLY_IN_FIRST_EXPERIMENT and exp_index > 0):
                continue
            folder = out_dir / exp_name / instance
            folder.mkdir(parents=True, exist_ok=True)
            for workload_index, model in enumerate(models):
                # A seed per run keeps each file independent of generation order.
                rng = np.random.default_rng([seed, exp_index, instance_index, workload_index])
                text, latency = _run_export(model, hw, rng)
                path = folder / run_file_name(model.workload)
                path.write_text(text, encoding="utf-8", newline="")
                sidecar = path.with_name(path.name[: -len(".csv")] + SIDECAR_SUFFIX)
                sidecar.write_text(json.dumps(latency, sort_keys=True) + "\n", encoding="utf-8", newline="")
                written += 1
    return written


def main(argv=None) -> int:
    """Command line: ``python -m src.generate --out DIR [--seed N] [--instances A,B]``."""
    parser = argparse.ArgumentParser(description="Generate the embedded stand-in profiling study as raw tf_stats exports.")
    parser.add_argument("--out", required=True, help="new or empty folder to write <exp>/<instance>/<run>.csv into")
    parser.add_argument("--seed", type=int, default=0, help="noise seed; same seed gives byte-identical files")
    parser.add_argument("--instances", help="comma-separated subset of instances (default: all ten)")
    args = parser.parse_args(argv)
    instances = args.instances.split(",") if args.instances else None
    started = time.perf_counter()
    try:
        written = generate_tree(args.out, seed=args.seed, instances=instances)
    except ProfcastError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written} tf_stats exports to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
