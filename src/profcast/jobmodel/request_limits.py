"""Bounds on one forecast request: how many rows it may hold, and when the server has given up on it.

The row limit is checked before any model runs (``limits.max_request_rows``: ten times more rows for
``output=totals``, whose answer is a tenth of the size). MLflow's scoring server answers 504 after
``MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`` seconds but leaves the worker thread computing; the job
model checks a ``Deadline`` between targets and stops there, so an abandoned request frees the
worker instead of running on.
"""

from __future__ import annotations

import os
import time

from profcast.errors import ProfcastError
from profcast.limits import MAX_REQUEST_ROWS_ENV, max_request_rows

SERVER_TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"  # MLflow's own setting (seconds, default 60)
SERVING_FLAG_ENV = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # set by MLflow's scoring server in its worker


def served() -> bool:
    """Whether this process is MLflow's scoring server (the row limit and deadline apply to served requests only)."""
    return os.environ.get(SERVING_FLAG_ENV, "").lower() == "true"


def check_request_rows(rows: int, shape: str) -> None:
    """A ProfcastError (HTTP 400) naming the limit when the request holds more rows than the shape allows."""
    limit = max_request_rows(totals=shape == "totals")
    if rows > limit:
        hint = (
            "split it into several requests"
            if shape == "totals"
            else f'split it, or ask for output=totals (params {{"output": "totals"}}: up to {max_request_rows(totals=True):,} rows)'
        )
        raise ProfcastError(
            f"the request holds {rows:,} profile rows, over the limit of {limit:,} for output={shape} "
            f"({MAX_REQUEST_ROWS_ENV}); {hint}"
        )


class RequestTimedOut(ProfcastError):
    """The server already answered 504 for this request; the rest of the work is dropped."""


class Deadline:
    """The time by which the scoring server gives up on a request (none outside the server)."""

    def __init__(self, seconds: float | None):
        self.at = None if seconds is None else time.monotonic() + seconds

    @classmethod
    def for_this_request(cls) -> "Deadline":
        """The scoring server's timeout when running inside it, else no deadline (``src.predict``)."""
        if not served():
            return cls(None)
        try:
            return cls(float(os.environ.get(SERVER_TIMEOUT_ENV, "60")))
        except ValueError:
            return cls(60.0)

    def check(self) -> None:
        """Raise RequestTimedOut once the deadline passed."""
        if self.at is not None and time.monotonic() > self.at:
            raise RequestTimedOut(
                f"the request ran past the server's timeout ({SERVER_TIMEOUT_ENV}); "
                "computation stopped; send fewer rows per request"
            )
