"""Plausible-value limits: a profile value past one is a unit or export mistake, refused before it trains or serves.

The bounds are far above anything a real training step records, so no honest profile meets them,
yet low enough that one bad cell (1e300 µs, a latency in microseconds instead of seconds) cannot
wreck a model's metrics. docs/reliability.md explains each choice.
"""

from __future__ import annotations

import os

from profcast.errors import ProfcastError
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY

# One op's total time in one profiled run, in microseconds: 1e12 µs is 11.6 days.
MAX_OP_TIME_US = 1e12
# Seconds per training step: one day.
MAX_BATCH_LATENCY_S = 86_400.0
# Seconds per epoch: one year.
MAX_EPOCH_LATENCY_S = 365 * 86_400.0

# Peak memory of one training step in bytes: 1 PiB, far past any one machine's memory.
MAX_PEAK_MEMORY_BYTES = float(2**50)

LIMITS = {BATCH_LATENCY: MAX_BATCH_LATENCY_S, "epoch_latency": MAX_EPOCH_LATENCY_S, PEAK_MEMORY: MAX_PEAK_MEMORY_BYTES}


def value_limit(column: str) -> float:
    """The largest plausible value of a profile column (an op time unless it is a latency)."""
    return LIMITS.get(column, MAX_OP_TIME_US)


def value_rule(column: str) -> str:
    """What an accepted value of ``column`` looks like, for the end of an error message."""
    if column == BATCH_LATENCY:
        return f"batch_latency is the measured seconds per training step: a finite number from 0 to {MAX_BATCH_LATENCY_S:g} (1 day), or empty"
    if column == "epoch_latency":
        return f"epoch_latency is the measured seconds per epoch: a finite number from 0 to {MAX_EPOCH_LATENCY_S:g} (1 year), or empty"
    if column == PEAK_MEMORY:
        return f"peak_memory_bytes is one training step's peak memory in bytes: a finite number from 0 to {MAX_PEAK_MEMORY_BYTES:g} (1 PiB), or empty"
    return f"op times are microseconds per run: finite numbers from 0 to {MAX_OP_TIME_US:g}"


# ---- Input size: bounded memory and time whatever a file or request holds --------------------------
# Text a profile file may hold once decompressed: a gzip bomb (3 MB -> 3 GB) stops here, not in the OOM killer.
MAX_INPUT_BYTES_ENV = "PROFCAST_MAX_INPUT_BYTES"
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3  # 2 GiB: above the longest real traces seen, below a laptop's memory
# A served request: refused before any work past either limit (docs/reliability.md).
MAX_REQUEST_BYTES_ENV = "PROFCAST_MAX_REQUEST_BYTES"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024**2  # 16 MiB of JSON/CSV is ~10,000 rows of ~100 ops
MAX_REQUEST_ROWS_ENV = "PROFCAST_MAX_REQUEST_ROWS"
DEFAULT_MAX_REQUEST_ROWS = 10_000  # rows x targets x op columns is the answer's size
TOTALS_ROW_FACTOR = 10  # output=totals answers one number per row and target: 10x the rows are allowed


def _env_limit(name: str, default: int) -> int:

    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise ProfcastError(
            f"{name}={text!r} is not a number; give a positive whole number (default {default})"
        ) from None
    if value <= 0:
        raise ProfcastError(f"{name}={text!r} must be positive (default {default})")
    return value


def max_input_bytes() -> int:
    """Most bytes of (decompressed) text read from one profile file: env PROFCAST_MAX_INPUT_BYTES, default 2 GiB."""
    return _env_limit(MAX_INPUT_BYTES_ENV, DEFAULT_MAX_INPUT_BYTES)


def max_request_bytes() -> int:
    """Largest served request body: env PROFCAST_MAX_REQUEST_BYTES, default 16 MiB."""
    return _env_limit(MAX_REQUEST_BYTES_ENV, DEFAULT_MAX_REQUEST_BYTES)


def max_request_rows(totals: bool = False) -> int:
    """Most profile rows in one served request: env PROFCAST_MAX_REQUEST_ROWS (default 10,000), 10x that for output=totals."""
    rows = _env_limit(MAX_REQUEST_ROWS_ENV, DEFAULT_MAX_REQUEST_ROWS)
    return rows * TOTALS_ROW_FACTOR if totals else rows


def shown_bytes(count: int) -> str:
    """``2147483648`` -> ``'2 GiB'``: a size as a reader compares it with the limit."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"


class CappedReader:
    """A binary stream that raises a one-line ProfcastError once more than ``max_input_bytes()`` were read from it."""

    def __init__(self, stream, source: str, limit: int | None = None):
        self.stream, self.source = stream, source
        self.limit = max_input_bytes() if limit is None else limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:

        # Never more than the limit allows plus one byte, so an unbounded read() cannot fill memory first.
        room = self.limit + 1 - self.read_bytes
        chunk = self.stream.read(room if size is None or size < 0 else min(size, room))
        self.read_bytes += len(chunk)
        if self.read_bytes > self.limit:
            raise ProfcastError(
                f"{self.source}: more than {shown_bytes(self.limit)} of text (decompressed); that is past the "
                f"input size limit ({MAX_INPUT_BYTES_ENV}={self.limit}); raise it if the file is a real profile"
            )
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stream.close()
