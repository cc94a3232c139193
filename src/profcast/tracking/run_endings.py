"""End every MLflow run a job or sweep opened, whatever stops it: bad input, Ctrl-C, SIGTERM or a bug.

A job run stopped early ends FAILED (bad input, a bug) or KILLED (Ctrl-C, SIGTERM); no run is
left RUNNING. The sweep's parent run is ended in the process that opened it (see
``profcast.tracking.sweep``): at the end of a sweep, or at exit when the sweep stopped early.
"""

from __future__ import annotations

import logging
import signal
import sys

from profcast.errors import ProfcastError, print_error
from profcast.stops import EXIT_INTERRUPTED, EXIT_TERMINATED, install_stop_handlers, restore_handlers, signals_seen, stop_exit_code

log = logging.getLogger(__name__)


def end_active_runs(status: str) -> None:
    """End the job's open runs (innermost first) with ``status``, if MLflow is in use."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    try:
        while mlflow.active_run() is not None:
            mlflow.end_run(status)
    except Exception as error:  # the store may be what failed; the exit must still be clean
        log.error("could not end the open MLflow run(s) as %s: %s", status, error)


def run_job(train, cfg) -> int:
    """Run ``train(cfg)``; on a stop end its runs and return the exit code (0, 2 bad input, 130/143 stopped).

    An unexpected error ends the runs FAILED and is raised again: it is a bug, and its traceback
    is what a maintainer needs.
    """
    previous = install_stop_handlers()
    try:
        train(cfg)
        return 0
    except ProfcastError as error:
        end_active_runs("FAILED")
        print_error(error)
        return 2
    except KeyboardInterrupt as stop:
        end_active_runs("KILLED")
        return stop_exit_code(stop)
    except BaseException:
        if signals_seen():  # a stop that some library turned into its own error is still a stop
            end_active_runs("KILLED")
            print("profcast: stopped by a signal; open runs ended KILLED", file=sys.stderr)
            return EXIT_TERMINATED if signals_seen()[-1] == signal.SIGTERM else EXIT_INTERRUPTED
        end_active_runs("FAILED")
        raise
    finally:
        restore_handlers(previous)  # in a sweep these are the callback's own, the same handler
