"""Plausible-value limits: a profile value past one is a unit or export mistake, refused before it trains or serves.

The bounds are far above anything a real training step records, so no honest profile meets them,
yet low enough that one bad cell (1e300 µs, a latency in microseconds instead of seconds) cannot
wreck a model's metrics. docs/reliability.md explains each choice.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time

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


def positive_env(name: str, default: int) -> int:
    """A positive whole number from env ``name`` (``default`` when unset); one-line error otherwise."""
    return _env_limit(name, default)


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
        self.budget = current_budget()  # a served request's: fewer bytes, and CPU seconds, checked on every read
        if self.budget is not None:
            self.limit = min(self.limit, self.budget.text_bytes)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.budget is not None:
            self.budget.check()
        # Never more than the limit allows plus one byte, so an unbounded read() cannot fill memory first;
        # under a budget in chunks, so a bomb is stopped after at most one chunk past its limit or deadline.
        room = self.limit + 1 - self.read_bytes
        if self.budget is not None:
            room = min(room, READ_CHUNK_BYTES)
        if self.budget is not None and (size is None or size < 0):
            return self._read_all_in_chunks(room)
        chunk = self.stream.read(room if size is None or size < 0 else min(size, room))
        self.read_bytes += len(chunk)
        if self.budget is not None:
            self.budget.check_unpacking(self.read_bytes, compressed_bytes_read(self.stream), self.source)
        if self.read_bytes > self.limit:
            if self.budget is not None:
                raise OverBudget(self.budget.text_message(self.source))
            raise ProfcastError(
                f"{self.source}: more than {shown_bytes(self.limit)} of text (decompressed); that is past the "
                f"input size limit ({MAX_INPUT_BYTES_ENV}={self.limit}); raise it if the file is a real profile"
            )
        return chunk

    def _read_all_in_chunks(self, room: int) -> bytes:
        chunks = []
        while chunk := self.read(room):
            chunks.append(chunk)
        return b"".join(chunks)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.stream.close()


def compressed_bytes_read(stream) -> int | None:
    """How many compressed bytes a gzip stream has consumed so far (None for a plain stream)."""
    packed = getattr(stream, "fileobj", None)  # gzip.GzipFile keeps the compressed file here
    try:
        return packed.tell() if packed is not None else None
    except (OSError, ValueError):
        return None


# ---- A served request's budget: text bytes, CPU seconds, and whether its client is still there ------
READ_CHUNK_BYTES = 1024**2  # between two budget checks while decompressing
UPLOAD_TEXT_BYTES_ENV = "PROFCAST_MAX_UPLOAD_TEXT_BYTES"
DEFAULT_UPLOAD_TEXT_BYTES = 256 * 1024**2  # 256 MiB of decompressed text per upload at most
# A real PyTorch trace gzips about 13:1 (tests/data/torch_traces); a bomb of zeros about 1000:1.
MAX_UPLOAD_RATIO = 50
MIN_UPLOAD_TEXT_BYTES = 32 * 1024**2  # however small the upload, this much text may come out of it
# While unpacking: past 16 MiB of text, more than 100x the compressed bytes consumed is a bomb, stopped
# there rather than at the upload's whole budget (gzip reads 128 KiB of input at a time).
BOMB_RATIO, BOMB_CHECK_AFTER_BYTES = 100, 16 * 1024**2
REQUEST_CPU_SECONDS_ENV = "PROFCAST_MAX_REQUEST_CPU_SECONDS"
DEFAULT_REQUEST_CPU_SECONDS = 30


class OverBudget(ProfcastError):
    """A request that needs more text or CPU time than its budget (the page answers 413)."""


class ClientGone(ProfcastError):
    """The client of a request left; its work stops here."""


class WorkBudget:
    """What one served request may spend: ``text_bytes`` of decompressed text and ``cpu_seconds`` of its thread's CPU.

    ``cancel()`` (its client left) stops it at the next check; checks run on every read of a capped
    stream and between the stages of a forecast, so a stop comes within one chunk or one stage.
    """

    def __init__(self, text_bytes: int, cpu_seconds: float):
        self.text_bytes, self.cpu_seconds = text_bytes, cpu_seconds
        self._cancelled = threading.Event()
        self._cpu_start: float | None = None

    def start(self) -> None:
        """Start counting CPU seconds (of the calling thread, the one doing the work)."""
        self._cpu_start = time.thread_time()

    def cancel(self) -> None:
        """The client left: the next check stops the work."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise ClientGone or OverBudget when the work must stop."""
        if self._cancelled.is_set():
            raise ClientGone("the client closed the connection")
        if self._cpu_start is not None and time.thread_time() - self._cpu_start > self.cpu_seconds:
            raise OverBudget(
                f"the forecast took more than {self.cpu_seconds:g} CPU seconds and was stopped "
                f"({REQUEST_CPU_SECONDS_ENV}={self.cpu_seconds:g}); send a smaller profile or raise the limit"
            )

    def check_unpacking(self, text_bytes: int, compressed_bytes: int | None, source: str) -> None:
        """Raise OverBudget when a gzip stream unpacks like a bomb: past 16 MiB, over 100x what it consumed."""
        if compressed_bytes and text_bytes > BOMB_CHECK_AFTER_BYTES and text_bytes > BOMB_RATIO * compressed_bytes:
            raise OverBudget(
                f"{source}: unpacks to more than {BOMB_RATIO}x its compressed size ({shown_bytes(text_bytes)} of "
                f"text from {shown_bytes(compressed_bytes)}), as a compression bomb does; a real profile "
                "compresses about 13:1; the upload was stopped there"
            )

    def text_message(self, source: str) -> str:
        """The refusal of an upload that decompresses past ``text_bytes``."""
        return (
            f"{source}: more than {shown_bytes(self.text_bytes)} of text once decompressed, more than a real "
            f"profile of this size holds; the upload was stopped there (the page unpacks {MAX_UPLOAD_RATIO}x an "
            f"upload's size, at least {shown_bytes(MIN_UPLOAD_TEXT_BYTES)}, at most {UPLOAD_TEXT_BYTES_ENV})"
        )


def upload_budget(upload_bytes: int) -> WorkBudget:
    """The budget of one uploaded profile of ``upload_bytes``: text at most 50x it (32 MiB at least), env caps."""
    ceiling = min(max_input_bytes(), _env_limit(UPLOAD_TEXT_BYTES_ENV, DEFAULT_UPLOAD_TEXT_BYTES))
    text = min(ceiling, max(MIN_UPLOAD_TEXT_BYTES, MAX_UPLOAD_RATIO * upload_bytes))
    return WorkBudget(text, _env_limit(REQUEST_CPU_SECONDS_ENV, DEFAULT_REQUEST_CPU_SECONDS))


_BUDGET: contextvars.ContextVar[WorkBudget | None] = contextvars.ContextVar("profcast_work_budget", default=None)


def current_budget() -> WorkBudget | None:
    """The budget of the request this thread works for, None outside one (a CLI run has no budget)."""
    return _BUDGET.get()


class spending:
    """``with spending(budget):`` the code inside (in this thread) works under ``budget``, whose CPU count starts now."""

    def __init__(self, budget: WorkBudget):
        self.budget = budget

    def __enter__(self) -> WorkBudget:
        self._token = _BUDGET.set(self.budget)
        self.budget.start()
        self.budget.check()  # a client that left while the request waited for a worker
        return self.budget

    def __exit__(self, *exc_info) -> None:
        _BUDGET.reset(self._token)
