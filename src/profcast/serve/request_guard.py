"""Guard MLflow's scoring server: a request too large is refused before any work, and no request
shape (deep nesting, wrong types, bad bytes) gets an HTTP 500 or a traceback.

``mlflow models serve`` runs ``uvicorn mlflow.pyfunc.scoring_server.app:app``; that module loads the
model (our ``job_model._load_pyfunc``) and then builds the app, whose ``/invocations`` route calls the
module-level ``scoring_server.invocations(data, content_type, model, schema)`` in a worker thread
on every request. When the job model is loaded inside that server, ``install`` wraps that function
once, so the plain ``mlflow models serve`` command serves with the guard:

- a body above ``limits.max_request_bytes()`` is a 400 naming the limit, before MLflow parses it;
- an exception MLflow's parsing raises that is not an ``MlflowException``, or is one with a 5xx code, (``RecursionError`` for
  ``[[[[...`` 50,000 deep, ``TypeError`` for a wrong shape) is a 400 with one line, logged here;
- a model's 400 keeps only its own line (MLflow prefixes a printout of the request's data);
- an error message longer than ``MAX_MESSAGE_CHARS`` (MLflow echoes the whole body of a request it
  cannot parse) is cut, so a bad 16 MB request is not answered with 16 MB.

FastAPI reads the whole body before the route runs, so the bytes a client may send are bounded by
a front (a reverse proxy's body size limit) in deployments open to the internet; docs/reliability.md.
"""

from __future__ import annotations

import functools
import logging
import os

from profcast.errors import first_line
from profcast.limits import MAX_REQUEST_BYTES_ENV, max_request_bytes, shown_bytes

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000  # an error answer's message: enough for any of ours, not a copy of the body
GUARDED = "__profcast_guarded__"
# MLflow wraps a model's error as "Failed to predict data '<the whole frame printed>'. \nError: <message>".
PREDICT_FAILED, ERROR_MARK = "Failed to predict data", "\nError: "


def in_scoring_server() -> bool:
    """Whether this process is the uvicorn worker ``mlflow models serve`` started (it names the model in this variable)."""
    from mlflow.pyfunc import scoring_server  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    return scoring_server._SERVER_MODEL_PATH in os.environ


def install() -> None:
    """Wrap ``scoring_server.invocations`` with ``guarded`` (once per process)."""
    from mlflow.pyfunc import scoring_server  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    if not getattr(scoring_server.invocations, GUARDED, False):
        scoring_server.invocations = guarded(scoring_server.invocations)
        log.info(
            "request guard installed: bodies up to %s (%s)", shown_bytes(max_request_bytes()), MAX_REQUEST_BYTES_ENV
        )


def guarded(invocations):
    """``invocations`` that refuses an oversized body first and turns any non-MLflow failure into a 400."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.protos.databricks_pb2 import BAD_REQUEST  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    @functools.wraps(invocations)
    def guarded_invocations(data, content_type, model, input_schema):
        limit = max_request_bytes()
        if data is not None and len(data) > limit:
            raise MlflowException(oversized_message(len(data), limit), error_code=BAD_REQUEST)
        try:
            return invocations(data, content_type, model, input_schema)
        except MlflowException as error:
            if error.message.startswith(PREDICT_FAILED) and ERROR_MARK in error.message:
                error.message = error.message.rsplit(ERROR_MARK, 1)[
                    1
                ]  # the model's own line, not a printout of the data
            if len(error.message) > MAX_MESSAGE_CHARS:
                error.message = error.message[:MAX_MESSAGE_CHARS] + " ... (cut)"
            if (
                error.get_http_status_code() >= 500
            ):  # the job model answers its own failures as 400: this is MLflow's parsing
                log.warning("request refused: %s", first_line(error))
                raise MlflowException(error.message, error_code=BAD_REQUEST) from None
            raise
        except RecursionError:
            raise MlflowException(
                "the request is nested too deeply to be a table of profiles; send "
                '{"dataframe_records": [{op column: time, ...}, ...]}',
                error_code=BAD_REQUEST,
            ) from None
        except Exception as error:  # MLflow's parsing of a request of an unexpected shape
            log.warning("request refused: %s: %s", type(error).__name__, first_line(error))
            raise MlflowException(
                f"the request could not be read as profiles ({type(error).__name__}: {first_line(error)[:300]})",
                error_code=BAD_REQUEST,
            ) from None

    setattr(guarded_invocations, GUARDED, True)
    return guarded_invocations


def oversized_message(size: int, limit: int) -> str:
    """The 400's words for a body of ``size`` bytes over ``limit``."""
    return (
        f"the request is {shown_bytes(size)} ({size} bytes), over the limit of {shown_bytes(limit)} "
        f'({MAX_REQUEST_BYTES_ENV}={limit}); send fewer rows per request, and params {{"output": "totals"}} '
        "when only totals are needed (a much smaller answer)"
    )
