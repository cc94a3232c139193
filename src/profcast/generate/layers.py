"""One training step's device ops, layer by layer: each layer kind's forward, backward and update rows
from its real tensor shapes (``DeviceOps``), as TensorFlow's tf_stats names them."""

import math

FLOAT_BYTES = 4


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


def conv(ops, backward, updates, scope, n, h, w, c_in, c_out, k, stride, bias, first, padding="same"):
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


def relu(ops, backward, scope, elements):
    """Relu forward and its gradient rows."""
    ops.elementwise("Relu", f"{scope}/Relu", elements)
    backward.append(("ReluGrad", f"{scope}/Relu/ReluGrad", elements, 3 * FLOAT_BYTES * elements, 1, elements, "memory"))


def maxpool(ops, backward, scope, n, h, w, c):
    """2x2 max-pool forward and gradient rows; returns the output height and width."""
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


def batchnorm(ops, backward, updates, scope, elements, channels):
    """Training-mode batch norm forward, gradient and its two variables' updates."""
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


def dense(ops, backward, updates, scope, n, d_in, d_out):
    """A dense layer's MatMul and bias forward, their gradients, and its two variables' updates."""
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
