"""The generated study's workloads and each one's device ops, built layer by layer from real shapes."""

import math
from dataclasses import dataclass

from profcast.errors import ProfcastError

BATCH_SIZES = [16, 32, 64, 128, 256]
CNN_MODELS = ["lenet5", "vggsmall", "resnetsmall"]
RNN_MODELS = ["lstm", "gru", "bilstm"]
OPTIMIZER = {"cnn": "sgd", "rnn": "adam"}
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
            self.add(
                "ResourceApplyGradientDescent",
                f"{name}/ResourceApplyGradientDescent",
                2 * params,
                12 * params,
                1,
                params,
            )


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
    backward.append(
        ("Conv2DBackpropFilter", f"{scope}/Conv2D/Conv2DBackpropFilter", flops, nbytes, 2, outputs, "conv_filter")
    )
    if not first:  # nothing upstream of the first layer needs an input gradient
        backward.append(
            ("Conv2DBackpropInput", f"{scope}/Conv2D/Conv2DBackpropInput", flops, nbytes, 1, inputs, "conv")
        )
    updates.append((f"{scope}/kernel", weights))
    if bias:
        ops.elementwise("BiasAdd", f"{scope}/BiasAdd", outputs)
        backward.append(
            ("BiasAddGrad", f"{scope}/BiasAdd/BiasAddGrad", outputs, FLOAT_BYTES * outputs, 1, outputs, "memory")
        )
        updates.append((f"{scope}/bias", c_out))
    return ho, wo, outputs


def _relu(ops, backward, scope, elements):
    ops.elementwise("Relu", f"{scope}/Relu", elements)
    backward.append(("ReluGrad", f"{scope}/Relu/ReluGrad", elements, 3 * FLOAT_BYTES * elements, 1, elements, "memory"))


def _maxpool(ops, backward, scope, n, h, w, c):
    ho, wo = h // 2, w // 2
    inputs, outputs = n * h * w * c, n * ho * wo * c
    ops.add("MaxPool", f"{scope}/MaxPool", inputs, FLOAT_BYTES * (inputs + outputs), 1, outputs)
    backward.append(
        (
            "MaxPoolGrad",
            f"{scope}/MaxPool/MaxPoolGrad",
            inputs,
            2 * FLOAT_BYTES * (inputs + outputs),
            2,
            inputs,
            "memory",
        )
    )
    return ho, wo


def _batchnorm(ops, backward, updates, scope, elements, channels):
    # Training-mode batch norm makes two passes (statistics, normalise) each way.
    ops.add("FusedBatchNormV3", f"{scope}/FusedBatchNormV3", 5 * elements, 3 * FLOAT_BYTES * elements, 2, elements)
    backward.append(
        (
            "FusedBatchNormGradV3",
            f"{scope}/FusedBatchNormGradV3",
            8 * elements,
            4 * FLOAT_BYTES * elements,
            2,
            elements,
            "memory",
        )
    )
    updates.extend([(f"{scope}/gamma", channels), (f"{scope}/beta", channels)])


def _dense(ops, backward, updates, scope, n, d_in, d_out):
    flops = 2 * n * d_in * d_out
    nbytes = FLOAT_BYTES * (n * d_in + d_in * d_out + n * d_out)
    ops.add("MatMul", f"{scope}/MatMul", flops, nbytes, 1, n * d_out, "gemm")
    ops.elementwise("BiasAdd", f"{scope}/BiasAdd", n * d_out)
    backward.append(
        ("BiasAddGrad", f"{scope}/BiasAdd/BiasAddGrad", n * d_out, FLOAT_BYTES * n * d_out, 1, n * d_out, "memory")
    )
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
        backward.append(
            (
                "Tile",
                "model/global_average_pooling2d/Mean_grad/Tile",
                0,
                2 * FLOAT_BYTES * n * h * w * channels,
                1,
                n * h * w * channels,
                "memory",
            )
        )
        backward.append(
            (
                "RealDiv",
                "model/global_average_pooling2d/Mean_grad/truediv",
                n * h * w * channels,
                2 * FLOAT_BYTES * n * h * w * channels,
                1,
                n * h * w * channels,
                "memory",
            )
        )
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
        h, w, size = _conv(
            ops, backward, updates, f"{scope}_conv1", n, in_h, in_w, in_channels, width, 3, stride, False, False
        )
        _batchnorm(ops, backward, updates, f"{scope}_bn1", size, width)
        _relu(ops, backward, f"{scope}_relu1", size)
        h, w, size = _conv(ops, backward, updates, f"{scope}_conv2", n, h, w, width, width, 3, 1, False, False)
        _batchnorm(ops, backward, updates, f"{scope}_bn2", size, width)
        if stride != 1 or in_channels != width:
            _conv(
                ops, backward, updates, f"{scope}_shortcut", n, in_h, in_w, in_channels, width, 1, stride, False, False
            )
            _batchnorm(ops, backward, updates, f"{scope}_shortcut_bn", size, width)
        ops.elementwise("AddV2", f"{scope}_add/add", size, reads=2)
        # The block input's gradient arrives from both branches and is summed.
        block_input = n * in_h * in_w * in_channels
        backward.append(
            ("AddN", f"{scope}_conv1/AddN", block_input, 3 * FLOAT_BYTES * block_input, 1, block_input, "memory")
        )
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
    ops.add(
        "ResourceGather",
        "sequential/embedding/embedding_lookup",
        0,
        FLOAT_BYTES * (2 * tokens * e + tokens),
        1,
        tokens * e,
    )
    backward.append(
        (
            "UnsortedSegmentSum",
            "sequential/embedding/embedding_lookup_grad/UnsortedSegmentSum",
            tokens * e,
            FLOAT_BYTES * (2 * tokens * e + vocabulary * e),
            2,
            tokens * e,
            "memory",
        )
    )
    updates.append(("sequential/embedding/embeddings", vocabulary * e))
    # cuDNN wants time-major input.
    ops.elementwise("Transpose", "sequential/rnn/transpose", tokens * e)
    backward.append(
        (
            "Transpose",
            "sequential/rnn/transpose_grad/transpose",
            0,
            2 * FLOAT_BYTES * tokens * e,
            1,
            tokens * e,
            "memory",
        )
    )
    weights = directions * ((e + hidden) * gates * hidden + 2 * gates * hidden)
    flops = directions * (2 * tokens * (e + hidden) * gates * hidden + 5 * tokens * gates * hidden)
    nbytes = FLOAT_BYTES * (weights + tokens * e + directions * tokens * (hidden + gates * hidden))
    # Each time step waits for the previous one, so only one step's gates run in parallel.
    per_step_work = n * gates * hidden * directions
    ops.add("CudnnRNN", "sequential/rnn/CudnnRNN", flops, nbytes, directions * (1 + steps), per_step_work, "rnn")
    backward.append(
        (
            "CudnnRNNBackprop",
            "sequential/rnn/CudnnRNN/CudnnRNNBackprop",
            2 * flops,
            1.5 * nbytes,
            directions * (2 + 2 * steps),
            per_step_work,
            "rnn",
        )
    )
    for d in range(directions):
        scope = f"sequential/rnn/{'backward' if d else 'forward'}_cell"
        updates.extend(
            [
                (f"{scope}/kernel", e * gates * hidden),
                (f"{scope}/recurrent_kernel", hidden * gates * hidden),
                (f"{scope}/bias", 2 * gates * hidden),
            ]
        )
    features = directions * hidden
    ops.elementwise("StridedSlice", "sequential/rnn/strided_slice", n * features)
    backward.append(
        (
            "StridedSliceGrad",
            "sequential/rnn/strided_slice_grad/StridedSliceGrad",
            0,
            FLOAT_BYTES * (tokens * features + n * features),
            1,
            tokens * features,
            "memory",
        )
    )
    if directions == 2:
        ops.elementwise("ConcatV2", "sequential/bidirectional/concat", n * features)
        backward.append(
            (
                "Slice",
                "sequential/bidirectional/concat_grad/Slice",
                0,
                2 * FLOAT_BYTES * n * features,
                2,
                n * features,
                "memory",
            )
        )
    _dense(ops, backward, updates, "sequential/logits", n, features, classes)
    _finish_step(ops, backward, updates, n, classes, optimizer)
    return ops


def _finish_step(ops, backward, updates, n, classes, optimizer):
    """Loss, metrics, then the backward ops in reverse layer order, then the optimizer updates."""
    logits = n * classes
    ops.elementwise("Softmax", "sequential/logits/Softmax", logits)
    ops.add(
        "SoftmaxCrossEntropyWithLogits",
        "categorical_crossentropy/SoftmaxCrossEntropyWithLogits",
        5 * logits,
        4 * FLOAT_BYTES * logits,
        1,
        logits,
    )
    ops.elementwise("Mul", "categorical_crossentropy/weighted_loss/Mul", n)
    ops.elementwise("Sum", "categorical_crossentropy/weighted_loss/Sum", n, writes=0)
    ops.elementwise("DivNoNan", "categorical_crossentropy/weighted_loss/value", 1, reads=2)
    for i in range(2):  # predictions and labels
        ops.elementwise("ArgMax", f"metrics/accuracy/ArgMax{'_1' if i else ''}", logits, writes=0)
    ops.elementwise("Equal", "metrics/accuracy/Equal", n, reads=2)
    ops.elementwise("Cast", "metrics/accuracy/Cast", n)
    ops.elementwise("Tile", "gradient_tape/categorical_crossentropy/weighted_loss/Tile", n)
    for name in [
        "loss/AssignAddVariableOp",
        "loss/AssignAddVariableOp_1",
        "metrics/accuracy/AssignAddVariableOp",
        "metrics/accuracy/AssignAddVariableOp_1",
        f"{optimizer}/AssignAddVariableOp",
    ]:
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
