"""A trace's peak memory per training step, from the profiler's ``[memory]`` events (``profile_memory=True``).

Each allocation or free the profiler saw is an instant event ``[memory]`` whose ``args`` carry
``Total Allocated`` (bytes the allocator holds right after it) and ``Device Type`` (0 = CPU).
The peak is the largest ``Total Allocated`` inside the profiled steps, of the device that trained:
an accelerator's events when the trace has any, else the CPU's. The two count differently:

- CUDA, ROCm and MPS allocators report their whole total, so the peak is the step's footprint
  (what ``torch.cuda.max_memory_allocated`` says over the same steps).
- The CPU's count starts at 0 when profiling begins: it holds only what the profiled steps
  allocate. ``profcast collect`` writes the bytes the step keeps between steps (parameters,
  gradients, optimizer state, inputs) into the trace's metadata as ``profcast_resident_bytes``,
  and the peak adds them. A CPU trace without that key gives the steps' own allocations only.
"""

from __future__ import annotations

from profcast.schema import PEAK_MEMORY

__all__ = ["PEAK_MEMORY", "RESIDENT_BYTES_KEY", "MemorySamples"]

RESIDENT_BYTES_KEY = "profcast_resident_bytes"
MEMORY_EVENT = "[memory]"
CPU_DEVICE_TYPE = 0


class MemorySamples:
    """The ``[memory]`` events of a trace as (time, total allocated, on an accelerator), gathered as events stream by."""

    def __init__(self):
        self.samples: list[tuple[float, float, bool]] = []

    def watch(self, events):
        """Yield ``events`` unchanged, keeping each memory event's sample on the way."""
        for event in events:
            if isinstance(event, dict) and event.get("name") == MEMORY_EVENT:
                self._keep(event)
            yield event

    def _keep(self, event: dict) -> None:
        args, ts = event.get("args"), event.get("ts")
        if not isinstance(args, dict) or not isinstance(ts, (int, float)):
            return
        total, device = args.get("Total Allocated"), args.get("Device Type")
        if isinstance(total, (int, float)) and not isinstance(total, bool) and total >= 0:
            self.samples.append((float(ts), float(total), device not in (CPU_DEVICE_TYPE, None)))

    def peak(self, inside_steps, resident_bytes=None) -> float | None:
        """Peak bytes in the profiled steps (``inside_steps(ts)`` says whether a time is in one), or None
        when the trace has no memory event there (recorded without ``profile_memory``)."""
        accelerator = any(on_device for _, _, on_device in self.samples)
        totals = [total for ts, total, on_device in self.samples if on_device == accelerator and inside_steps(ts)]
        if not totals:
            return None
        resident = _resident(resident_bytes) if not accelerator else 0.0
        return max(totals) + resident


def _resident(value) -> float:
    """The metadata's resident bytes as a number (Kineto may write a JSON number or a string); 0 when absent or bad."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number >= 0 and number == number and number != float("inf") else 0.0
