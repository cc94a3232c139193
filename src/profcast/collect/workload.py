"""Run one suite workload on a device: build the network, train it on random inputs under the profiler, write its trace.

A device that runs out of memory raises ``OutOfMemory`` (the batch does not fit); any other error
propagates as it is, for the suite to record.
"""

from __future__ import annotations

import gc

from profcast.collect.networks import random_batch, training_loss
from profcast.collect.quality import time_steps
from profcast.collect.steps import record_trace
from profcast.collect.suites import Workload

# What the allocators say when memory runs out: CUDA/ROCm raise torch.OutOfMemoryError; the CPU and MPS
# allocators raise a RuntimeError with one of these in its message.
OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory")


class OutOfMemory(Exception):
    """The device ran out of memory running a workload."""


def available_devices() -> list[str]:
    """The devices torch can train on here, best first: cuda (also ROCm builds), mps, cpu."""
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    found = ["cuda"] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def build_optimizer(name: str, parameters):
    """SGD with momentum or Adam, as people train (learning rates do not change a step's time)."""
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    if name == "adam":
        return torch.optim.Adam(parameters, lr=1e-4)
    return torch.optim.SGD(parameters, lr=0.01, momentum=0.9)


def run_workload(workload: Workload, path, device: str) -> dict:
    """Train ``workload`` one unrecorded step, then ``warmup`` and ``steps`` profiled ones; write the trace to
    ``path``; then time ``quality.REPEATS`` more steps and return them (``quality.time_steps``)."""
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    try:
        torch.manual_seed(0)
        model = workload.network.build(workload.width, workload.depth, workload.input_size).to(device)
        model.train()
        optimizer = build_optimizer(workload.optimizer, model.parameters())
        inputs, labels = random_batch(workload.network, workload.batchsize, workload.input_size, device)

        def step():
            # Gradients stay allocated between steps (set_to_none=False), so they count in the resident bytes.
            optimizer.zero_grad(set_to_none=False)
            training_loss(model(inputs), labels).backward()
            optimizer.step()

        step()  # allocates the gradients and the optimizer's state before anything is measured
        synchronize(device)
        resident = resident_bytes(model, optimizer, (inputs, labels))
        record_trace(
            step,
            path,
            steps=workload.steps,
            warmup=workload.warmup,
            wait=0,
            profile_memory=True,
            resident_bytes=resident,
        )
        return time_steps(step, device, synchronize)
    except torch.OutOfMemoryError as error:
        raise OutOfMemory(first_line(error)) from None
    except RuntimeError as error:
        if any(words in str(error).lower() for words in OUT_OF_MEMORY_WORDS):
            raise OutOfMemory(first_line(error)) from None
        raise
    finally:
        release_memory(device)


def resident_bytes(model, optimizer, tensors) -> int:
    """Bytes a training step keeps between steps: parameters, their gradients, the optimizer's state, the batch."""
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    seen, total = set(), 0

    def add(tensor):
        nonlocal total
        if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in seen:
            seen.add(tensor.untyped_storage().data_ptr())
            total += tensor.untyped_storage().nbytes()

    for parameter in model.parameters():
        add(parameter)
        add(parameter.grad)
    for buffer in model.buffers():
        add(buffer)
    for state in optimizer.state.values():
        for value in state.values():
            add(value)
    for tensor in tensors:
        add(tensor)
    return total


def synchronize(device: str) -> None:
    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def release_memory(device: str) -> None:
    """Hand cached blocks back, so the next workload starts from an empty device (after an OOM above all)."""

    import torch  # noqa: PLC0415  torch is optional (the torch extra) and slow to import

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    elif device == "mps":
        torch.mps.empty_cache()


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
