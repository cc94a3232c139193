"""A PyTorch profiler trace recorded with shapes (``record_shapes=True``) as per-call records.

A call is an outermost operator: a ``cpu_op`` named ``aten::...`` or ``torch::...`` that no other such
operator encloses on its thread (the autograd engine's ``evaluate_function`` wrappers and optimizer
annotations do not count as operators). Its shapes are the event's ``Input Dims``; the trace records
no output shape, so ``output_shape`` is ``()`` and ``regressors/call_costs`` infers it from the inputs,
except for a forward convolution, whose output also needs its stride, padding and dilation: they
are read from the event's ``Concrete Inputs`` (recorded with the shapes since PyTorch 2.1).
Its time is the device time of the kernels it launched (kernel, memcpy and memset events joined to
its runtime calls by ``correlation``) when the trace has device events, else its host duration
(``time_source`` says which). Only calls inside ``ProfilerStep#N`` windows count, ``repeat`` is
1 / steps so that sums are per step. Every call's ``phase`` is ``fw``: a backward operator is its own
call with its own shapes (``backward`` True), not a doubled forward as in NeuSight's FX files.
A call's ``dtype`` is that of its first tensor input, except under autocast: an ``aten::linear`` given
FP32 tensors that casts them and computes at bf16 inside is a bf16 call (the half dtype of an
operator it encloses wins over its own FP32 inputs).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.neusight_calls import CALL_COLUMNS
from profcast.ingest.torch_trace import (
    DEVICE_CATEGORIES,
    HOST_OP,
    NESTING_SLACK_US,
    RUNTIME_CATEGORIES,
    STEP_NAME,
)
from profcast.ingest.trace_events import load_trace_events

OPERATOR_PREFIXES = ("aten::", "torch::")
BACKWARD_WRAPPER = "autograd::engine::evaluate_function"
# The profiler's input type names -> the dtype names of NeuSight's files.
INPUT_TYPES = {"float": "float32", "c10::Half": "float16", "c10::BFloat16": "bfloat16", "double": "float64"}
INPUT_TYPES |= {"long int": "int64", "int": "int32", "bool": "bool", "unsigned char": "uint8"}
HALF_TYPES = ("bfloat16", "float16")


def read_trace_calls(path, gpu: str = "anchor", model: str | None = None, batchsize: int = 1) -> pd.DataFrame:
    """A shape-recorded trace as per-call records (:data:`CALL_COLUMNS` plus ``backward``, ``time_source``)."""
    path = Path(path)
    events = [e for e in load_trace_events(path) if isinstance(e, dict) and e.get("ph") == "X" and _timed(e)]
    steps = [
        (e["ts"], e["ts"] + e["dur"]) for e in events if isinstance(e.get("name"), str) and STEP_NAME.match(e["name"])
    ]
    if not steps:
        raise ProfcastError(f"{path}: no ProfilerStep#N window; record the trace with profcast.collect")
    ops = [e for e in events if e.get("cat") == HOST_OP]
    if not any(isinstance(e.get("args"), dict) and "Input Dims" in e["args"] for e in ops):
        raise ProfcastError(f"{path}: the trace has no input shapes; record it with record_shapes=True")
    calls, launches, nested = _outermost_operators(ops + [e for e in events if e.get("cat") in RUNTIME_CATEGORIES])
    device = defaultdict(float)
    kernels = [e for e in events if e.get("cat") in DEVICE_CATEGORIES]
    for kernel in kernels:
        call = launches.get((kernel.get("args") or {}).get("correlation"))
        if call is not None:
            device[call] += float(kernel["dur"])
    rows = []
    for index, (event, backward) in enumerate(calls):
        if not any(start <= event["ts"] <= end for start, end in steps):
            continue
        args = event.get("args") or {}
        dims = args.get("Input Dims") or []
        types = args.get("Input type") or []
        # a tensor input is one of a tensor dtype ([] then is a 0-d tensor); Scalar and list arguments are not
        tensor = [isinstance(d, list) and (bool(d) or t in INPUT_TYPES) for t, d in zip(types, dims)]
        shapes = tuple(tuple(int(x) for x in d) for d, is_tensor in zip(dims, tensor) if is_tensor)
        dtype = next((INPUT_TYPES.get(t, str(t)) for t, is_tensor in zip(types, tensor) if is_tensor), "")
        if dtype == "float32":  # autocast: the cast happens inside the call, which computes at the half dtype
            dtype = next((half for half in HALF_TYPES if half in nested[id(event)]), dtype)
        rows.append(
            {
                "gpu": gpu,
                "model": model or path.name.split(".")[0],
                "mode": "train",
                "seq_len": 0,
                "batchsize": batchsize,
                "node": index,
                "kind": event["name"].rsplit("::", 1)[-1],
                "phase": "fw",
                "input_shapes": shapes,
                "output_shape": _convolution_output(event["name"], dims, args.get("Concrete Inputs")),
                "dtype": dtype,
                "repeat": 1.0 / len(steps),
                "time_us": device[id(event)] if kernels else float(event["dur"]),
                "backward": backward,
                "time_source": "device" if kernels else "host",
            }
        )
    if not rows:
        raise ProfcastError(f"{path}: no operator call inside a ProfilerStep#N window")
    return pd.DataFrame(rows, columns=[*CALL_COLUMNS, "backward", "time_source"])


def _outermost_operators(host: list[dict]) -> tuple[list[tuple[dict, bool]], dict, dict]:
    """(outermost operator, inside a backward wrapper) in time order, runtime correlation -> id(its call),
    and id(call) -> the dtypes of the operators it encloses."""
    by_thread = defaultdict(list)
    for event in host:
        by_thread[(event.get("pid"), event.get("tid"))].append(event)
    calls, launches, nested = [], {}, defaultdict(set)
    for events in by_thread.values():
        events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[dict] = []
        for event in events:
            while stack and event["ts"] + event["dur"] > stack[-1]["ts"] + stack[-1]["dur"] + NESTING_SLACK_US:
                stack.pop()
            operator = next((e for e in stack if e["name"].startswith(OPERATOR_PREFIXES)), None)
            if event.get("cat") in RUNTIME_CATEGORIES:
                correlation = (event.get("args") or {}).get("correlation")
                if operator is not None and correlation is not None:
                    launches[correlation] = id(operator)
            elif operator is None and event["name"].startswith(OPERATOR_PREFIXES):
                calls.append((event, any(e["name"].startswith(BACKWARD_WRAPPER) for e in stack)))
            elif operator is not None:
                types = (event.get("args") or {}).get("Input type") or []
                nested[id(operator)].update(INPUT_TYPES.get(t, str(t)) for t in types if isinstance(t, str))
            stack.append(event)
    calls.sort(key=lambda call: call[0]["ts"])
    return calls, launches, nested


# Forward convolutions: (input, weight, bias, stride, padding, dilation, ...); `convolution` and
# `_convolution` then carry `transposed`, whose output this does not work out.
CONVOLUTIONS = {"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution", "aten::_convolution"}


def _convolution_output(name: str, dims: list, concrete) -> tuple:
    """A forward convolution's output shape from its dims and concrete arguments; () for any other call."""
    if name not in CONVOLUTIONS or not isinstance(concrete, list) or len(concrete) < 6 or len(dims) < 2:
        return ()
    values = [_literal(text) for text in concrete[3:7]]
    if name.endswith("convolution") and values[3:] != [False]:
        return ()  # transposed, or not said
    try:
        return conv_output_shape(tuple(dims[0]), tuple(dims[1]), *values[:3])
    except TypeError:
        return ()


def conv_output_shape(given: tuple, weight: tuple, stride, padding, dilation) -> tuple:
    """A (non-transposed) convolution's output shape from its input and weight shapes and its arguments.

    ``stride``, ``padding`` and ``dilation`` are an int or one per spatial axis; ``padding`` may be
    ``"same"`` or ``"valid"``. The input may lack its batch axis. ``()`` when the shapes do not fit.
    """
    spatial = len(weight) - 2
    if spatial < 1 or len(given) not in (spatial + 1, spatial + 2):
        return ()
    if padding == "same":
        return given[: -spatial - 1] + (weight[0],) + given[-spatial:]
    padding = 0 if padding == "valid" else padding

    def per_axis(value):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        return values * spatial if len(values) == 1 else values

    strides, paddings, dilations = per_axis(stride), per_axis(padding), per_axis(dilation)
    numbers = strides + paddings + dilations
    if len(numbers) != 3 * spatial or not all(isinstance(v, int) and v >= 0 for v in numbers) or 0 in strides:
        return ()
    sizes = tuple(
        (size + 2 * pad - dil * (kernel - 1) - 1) // step + 1
        for size, kernel, step, pad, dil in zip(given[-spatial:], weight[2:], strides, paddings, dilations)
    )
    return () if min(sizes) < 1 else given[: -spatial - 1] + (weight[0],) + sizes


def _literal(text):
    """A concrete argument as the profiler writes it ("[2, 2]", "1", "False", "same"), as a Python value."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError):
        return text


def _timed(event: dict) -> bool:
    return all(
        isinstance(event.get(key), (int, float)) and not isinstance(event.get(key), bool) for key in ("ts", "dur")
    )
