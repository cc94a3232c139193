"""Each op call's work: floating-point operations and bytes moved, from its kind, phase and shapes.

The counts are the textbook ones a roofline uses (one multiply-add = 2 FLOPs; every input read and
the output written once), not a simulation of the kernels: the per-call model learns how far each
class of call stays from its roofline on each device. Classes:

| class | kinds | FLOPs (forward) | bytes (forward) |
|---|---|---|---|
| ``matmul`` | Linear, Conv1D, linear, addmm, mm, matmul, bmm, baddbmm | 2·M·K·N (times the batch) | A + B + C |
| ``conv`` | conv1d/2d/3d, convolution, with the weight's shape among the inputs | 2·out·(C_in/groups)·kernel | input + weight + output |
| ``conv`` | convolution_backward (a trace's; grad_output, input, weight) | 2 · the forward's | grad_output + 2 · (input + weight) |
| ``norm`` | LayerNorm, layer_norm, BatchNorm*, GroupNorm, RMSNorm, ... | 8 per element | input + output |
| ``softmax`` | softmax, log_softmax, Softmax | 5 per element | input + output |
| ``embedding`` | Embedding, embedding | 0 | 2 · output (rows read, written) |
| ``elementwise`` | add, mul, gelu, Dropout, where, tanh, pow, contiguous, to, ... | 1 per output element | inputs + output |
| ``metadata`` | size, view, permute, getitem, ... (no device work) | 0 | 0 |

Backward (``bw``) counts twice the forward's FLOPs and bytes (the gradients of both inputs of a
matmul; read the upstream gradient, write the input's). Gradient accumulation (``acc``) reads and
writes the parameter's gradient: 3 · parameter bytes, known for Linear/Conv1D/addmm (K·N + N) and norms (2 · width);
an ``acc`` call of another kind is unknown. A kind in none of the classes, or a call whose shapes do not fit its
class, is **unknown** (``known`` False): the per-call model falls back to its measured time ratio and counts it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MATMUL_MODULES = {"Linear", "Conv1D", "linear", "LazyLinear"}
MATMUL_FUNCTIONS = {"addmm", "mm", "matmul", "bmm", "baddbmm"}
CONV_KINDS = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d"}
# A trace's backward convolution: (grad_output, input, weight, ...); it computes the input's and the
# weight's gradients, each about the forward's work (a first layer's skipped input gradient is not seen).
CONV_BACKWARD_KINDS = {"convolution_backward"}
NORM_KINDS = {
    "LayerNorm",
    "layer_norm",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "batch_norm",
    "GroupNorm",
    "group_norm",
    "RMSNorm",
    "LlamaRMSNorm",
    "T5LayerNorm",
    "native_layer_norm",
    "native_layer_norm_backward",
    "native_batch_norm",
    "native_batch_norm_backward",
}
SOFTMAX_KINDS = {"softmax", "log_softmax", "Softmax", "LogSoftmax", "_softmax", "_log_softmax", "cross_entropy_loss"}
SOFTMAX_KINDS |= {"_softmax_backward_data", "_log_softmax_backward_data"}
EMBEDDING_KINDS = {"Embedding", "embedding"}
ELEMENTWISE_KINDS = {
    "add", "sub", "mul", "truediv", "div", "floordiv", "pow", "neg", "exp", "log", "sqrt", "rsqrt",
    "tanh", "Tanh", "sigmoid", "Sigmoid", "relu", "ReLU", "gelu", "GELU", "GELUActivation", "NewGELUActivation",
    "FastGELUActivation", "silu", "SiLU", "Dropout", "dropout", "where", "masked_fill", "clamp", "abs",
    "contiguous", "clone", "copy_", "to", "float", "half", "type", "cat", "stack", "ones", "zeros", "full",
    "arange", "ones_like", "zeros_like", "full_like", "cumsum", "mean", "sum", "max", "min", "triu", "tril",
    "iadd", "imul", "lt", "gt", "le", "ge", "ne", "logical_not", "bitwise_not", "baddbmm_",
    "add_", "mul_", "div_", "sub_", "fill_", "zero_", "gelu_backward", "threshold_backward", "relu_", "tanh_backward",
    "sigmoid_backward", "silu_backward", "native_dropout", "native_dropout_backward", "nll_loss_forward",
    "nll_loss_backward", "nll_loss", "nll_loss_nd", "AccumulateGrad", "addcmul_", "addcdiv_", "lerp_", "sqrt_",
}  # fmt: skip
METADATA_KINDS = {
    "size", "getitem", "getattr", "view", "permute", "transpose", "dim", "eq", "expand", "unsqueeze",
    "squeeze", "reshape", "split", "chunk", "finfo", "iinfo", "flatten", "unbind", "t", "narrow",
    "expand_as", "view_as", "_unsafe_view", "as_strided", "detach", "is_floating_point", "numel",
    "empty", "empty_like", "empty_strided", "resize_", "resolve_conj", "resolve_neg", "alias", "slice", "select",
    "lift_fresh", "_reshape_alias", "result_type",
}  # fmt: skip
ELEMENT_FLOPS = {"norm": 8.0, "softmax": 5.0, "elementwise": 1.0}
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8, "int64": 8, "long": 8}
DTYPE_BYTES |= {"int32": 4, "int": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}
DEFAULT_DTYPE_BYTES = 4  # FP32, the precision of NeuSight's runs, when a call names none
PHASE_FACTOR = {"fw": 1.0, "bw": 2.0}
OP_CLASSES = ("matmul", "conv", "norm", "softmax", "embedding", "elementwise", "metadata", "unknown")


def op_class(kind: str) -> str:
    """The cost class of an op kind (a row of the module docstring's table), ``unknown`` if none."""
    if kind in MATMUL_MODULES or kind in MATMUL_FUNCTIONS:
        return "matmul"
    for name, kinds in (
        ("conv", CONV_KINDS | CONV_BACKWARD_KINDS),
        ("norm", NORM_KINDS),
        ("softmax", SOFTMAX_KINDS),
        ("embedding", EMBEDDING_KINDS),
        ("elementwise", ELEMENTWISE_KINDS),
        ("metadata", METADATA_KINDS),
    ):
        if kind in kinds:
            return name
    return "unknown"


def elements(shape) -> int:
    """Number of elements of a shape (``()`` -> 1, a scalar)."""
    return math.prod(shape) if shape else 1


def infer_output_shape(kind: str, input_shapes: tuple) -> tuple | None:
    """The output shape of a call whose record has none (PyTorch traces), from its inputs; None if unsure."""
    tensors = [s for s in input_shapes if isinstance(s, tuple)]  # () is a 0-d tensor
    cls = op_class(kind)
    if kind in CONV_BACKWARD_KINDS and len(tensors) >= 2:
        return tensors[1]  # the input's gradient
    if not tensors or cls in ("conv", "unknown"):
        return None  # a convolution's output needs its stride and padding, which a trace does not keep
    try:
        if kind == "linear" and len(tensors) >= 2:  # aten::linear(x, weight (N, K), bias)
            return tensors[0][:-1] + (tensors[1][0],)
        if cls == "matmul":
            a, b = tensors[-2:] if kind in ("addmm", "baddbmm") else tensors[:2]
            batch = np.broadcast_shapes(a[:-2], b[:-2]) if len(a) > 2 or len(b) > 2 else ()
            return tuple(batch) + (a[-2] if len(a) > 1 else 1, b[-1])
        if cls == "embedding" and len(tensors) >= 2:  # aten::embedding(weight, ids)
            return tensors[1] + (tensors[0][-1],)
        return tuple(np.broadcast_shapes(*tensors))
    except (ValueError, IndexError):
        # losses and reductions over inputs that do not broadcast: the largest input bounds the output
        return max(tensors, key=elements) if cls in ("softmax", "elementwise", "norm") else None


def forward_work(kind: str, input_shapes: tuple, output_shape: tuple) -> tuple[float, float] | None:
    """(FLOPs, elements moved) of one forward call, or None when the class or shapes give no count."""
    cls = op_class(kind)
    tensors = [s for s in input_shapes if isinstance(s, tuple)]
    if not output_shape and cls not in ("metadata", "unknown"):
        output_shape = infer_output_shape(kind, input_shapes)
        if output_shape is None:
            return None
    out = elements(output_shape)
    if cls == "metadata":
        return 0.0, 0.0
    if cls == "matmul":
        return _matmul_work(kind, tensors, output_shape)
    if kind in CONV_BACKWARD_KINDS:
        if len(tensors) < 3 or len(tensors[2]) < 3:
            return None
        grad_output, given, weight = tensors[:3]
        flops = 2.0 * 2.0 * elements(grad_output) * math.prod(weight[1:])
        return flops, float(elements(grad_output) + 2 * (elements(given) + elements(weight)))
    if cls == "conv":
        # input, weight (C_out, C_in/groups, *kernel), [bias]: FX modules without the weight's shape are unknown.
        if len(tensors) < 2 or len(tensors[1]) < 3 or not output_shape:
            return None
        weight = tensors[1]
        flops = 2.0 * out * math.prod(weight[1:])
        return flops, float(elements(tensors[0]) + elements(weight) + out)
    if cls == "embedding":
        # FX's Embedding module has the ids as its only input; aten::embedding(weight, ids) has two.
        ids = tensors[-1] if len(tensors) >= 2 else (tensors[0] if tensors else ())
        return 0.0, 2.0 * out + elements(ids)
    if cls in ELEMENT_FLOPS:
        moved = sum(elements(s) for s in tensors) + out
        return ELEMENT_FLOPS[cls] * out, float(moved)
    return None


def _matmul_work(kind: str, tensors: list, output_shape: tuple) -> tuple[float, float] | None:
    if not output_shape or not tensors:
        return None
    out = elements(output_shape)
    if kind in MATMUL_MODULES:
        # Linear / HF Conv1D: x (..., K) @ W (K, N); the weight is a parameter, not an input.
        k, n = tensors[0][-1] if tensors[0] else 1, output_shape[-1]
        m = out // n if n else 0
        return 2.0 * m * k * n, float(m * k + k * n + m * n)
    operands = tensors[-2:] if kind in ("addmm", "baddbmm") else tensors[:2]
    if len(operands) != 2 or len(operands[0]) < 1:
        return None
    k = operands[0][-1]
    return 2.0 * out * k, float(sum(elements(s) for s in tensors) + out)


def accumulation_work(kind: str, input_shapes: tuple, output_shape: tuple) -> tuple[float, float] | None:
    """(FLOPs, elements moved) of adding one call's parameter gradient to the accumulated one, None if unknown."""
    tensors = [s for s in input_shapes if isinstance(s, tuple)]
    if kind in MATMUL_MODULES and tensors and tensors[0] and output_shape:
        params = tensors[0][-1] * output_shape[-1] + output_shape[-1]
    elif kind == "addmm" and len(tensors) == 3:
        params = elements(tensors[0]) + elements(tensors[2])  # bias and weight
    elif op_class(kind) == "norm" and output_shape:
        params = 2 * output_shape[-1]
    else:
        return None
    return float(params), 3.0 * params


def call_work(
    kind: str, phase: str, input_shapes: tuple, output_shape: tuple, dtype: str
) -> tuple[float, float] | None:
    """(FLOPs, bytes) of one call in one phase (``fw``, ``bw``, ``acc``), or None when unknown."""
    if phase == "acc":
        work = accumulation_work(kind, input_shapes, output_shape)
    else:
        work = forward_work(kind, input_shapes, output_shape)
        if work is not None:
            work = (work[0] * PHASE_FACTOR[phase], work[1] * PHASE_FACTOR[phase])
    if work is None:
        return None
    return work[0], work[1] * DTYPE_BYTES.get(dtype, DEFAULT_DTYPE_BYTES)


def add_call_costs(calls: pd.DataFrame) -> pd.DataFrame:
    """The calls with ``op_class``, ``flops``, ``bytes`` and ``known`` (False: no count, flops and bytes NaN)."""
    classes, flops, moved = [], [], []
    for kind, phase, inputs, output, dtype in zip(
        calls["kind"], calls["phase"], calls["input_shapes"], calls["output_shape"], calls["dtype"]
    ):
        work = call_work(kind, phase, inputs, output, dtype)
        classes.append(op_class(kind) if work is not None else "unknown")
        flops.append(work[0] if work is not None else math.nan)
        moved.append(work[1] if work is not None else math.nan)
    return calls.assign(op_class=classes, flops=flops, bytes=moved, known=[c != "unknown" for c in classes])
