"""The generated study's workloads and each one's device ops, built layer by layer from real shapes."""

from dataclasses import dataclass

from profcast.errors import ProfcastError
from profcast.generate.layers import FLOAT_BYTES, DeviceOps, batchnorm, conv, dense, maxpool, relu

BATCH_SIZES = [16, 32, 64, 128, 256]
CNN_MODELS = ["lenet5", "vggsmall", "resnetsmall"]
RNN_MODELS = ["lstm", "gru", "bilstm"]
OPTIMIZER = {"cnn": "sgd", "rnn": "adam"}

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


def _cnn_step(model, dataset, n, optimizer) -> DeviceOps:
    """Forward, backward and SGD update of one CNN step on a batch of ``n`` images."""
    h, w, c, classes, _ = IMAGE_DATASETS[dataset]
    ops, backward, updates = DeviceOps(), [], []
    ops.elementwise("Cast", "sequential/Cast", n * h * w * c, reads=0.25)  # uint8 -> float32
    # TF's layout optimizer turns the NHWC Keras input into cuDNN's NCHW and back.
    ops.elementwise("Transpose", "sequential/TransposeNHWCToNCHW-LayoutOptimizer", n * h * w * c)
    if model == "lenet5":
        h, w, size = conv(ops, backward, updates, "sequential/conv2d", n, h, w, c, 6, 5, 1, True, True)
        relu(ops, backward, "sequential/conv2d", size)
        h, w = maxpool(ops, backward, "sequential/max_pooling2d", n, h, w, 6)
        h, w, size = conv(ops, backward, updates, "sequential/conv2d_1", n, h, w, 6, 16, 5, 1, True, False, "valid")
        relu(ops, backward, "sequential/conv2d_1", size)
        h, w = maxpool(ops, backward, "sequential/max_pooling2d_1", n, h, w, 16)
        channels, widths = 16, [120, 84]
    elif model == "vggsmall":
        channels, first = c, True
        for block, width in enumerate([32, 64, 128]):
            for i in range(2):
                scope = f"sequential/block{block + 1}_conv{i + 1}"
                h, w, size = conv(ops, backward, updates, scope, n, h, w, channels, width, 3, 1, True, first)
                relu(ops, backward, scope, size)
                channels, first = width, False
            h, w = maxpool(ops, backward, f"sequential/block{block + 1}_pool", n, h, w, channels)
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
        dense(ops, backward, updates, scope, n, features, width)
        relu(ops, backward, scope, n * width)
        features = width
    dense(ops, backward, updates, "sequential/logits", n, features, classes)
    _finish_step(ops, backward, updates, n, classes, optimizer)
    return ops


def _resnet_body(ops, backward, updates, n, h, w, c):
    """A small CIFAR-style ResNet: stem, max pool, three one-block stages with projections."""
    h, w, size = conv(ops, backward, updates, "model/stem_conv", n, h, w, c, 16, 3, 1, False, True)
    batchnorm(ops, backward, updates, "model/stem_bn", size, 16)
    relu(ops, backward, "model/stem_relu", size)
    h, w = maxpool(ops, backward, "model/stem_pool", n, h, w, 16)
    channels = 16
    for stage, (width, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        scope = f"model/stage{stage + 1}"
        in_h, in_w, in_channels = h, w, channels
        h, w, size = conv(
            ops, backward, updates, f"{scope}_conv1", n, in_h, in_w, in_channels, width, 3, stride, False, False
        )
        batchnorm(ops, backward, updates, f"{scope}_bn1", size, width)
        relu(ops, backward, f"{scope}_relu1", size)
        h, w, size = conv(ops, backward, updates, f"{scope}_conv2", n, h, w, width, width, 3, 1, False, False)
        batchnorm(ops, backward, updates, f"{scope}_bn2", size, width)
        if stride != 1 or in_channels != width:
            conv(
                ops, backward, updates, f"{scope}_shortcut", n, in_h, in_w, in_channels, width, 1, stride, False, False
            )
            batchnorm(ops, backward, updates, f"{scope}_shortcut_bn", size, width)
        ops.elementwise("AddV2", f"{scope}_add/add", size, reads=2)
        # The block input's gradient arrives from both branches and is summed.
        block_input = n * in_h * in_w * in_channels
        backward.append(
            ("AddN", f"{scope}_conv1/AddN", block_input, 3 * FLOAT_BYTES * block_input, 1, block_input, "memory")
        )
        relu(ops, backward, f"{scope}_relu2", size)
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
    dense(ops, backward, updates, "sequential/logits", n, features, classes)
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
