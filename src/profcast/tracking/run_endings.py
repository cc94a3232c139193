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
from profcast.stops import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    install_stop_handlers,
    restore_handlers,
    signals_seen,
    stop_exit_code,
)
from profcast.tracking.store_faults import store_fault

log = logging.getLogger(__name__)


def end_active_runs(status: str) -> bool:
    """End the job's open runs (innermost first) with ``status``, if MLflow is in use; False if the store refused."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return True
    try:
        while mlflow.active_run() is not None:
            mlflow.end_run(status)
    except Exception as error:  # the store may be what failed; the exit must still be clean
        log.error("could not end the open MLflow run(s) as %s: %s", status, error)
        return False
    return True


def end_runs_after_fault() -> bool:
    """End the open runs FAILED after a store fault, and the run whose own ending the fault broke; False if any stays RUNNING.

    A run's ``with`` block pops it from MLflow's stack before writing its end: when that write
    fails (a full disk), the run is no longer active but still RUNNING in the store.
    """
    ended = end_active_runs("FAILED")
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return ended
    try:
        last = mlflow.last_active_run()
        if last is not None and last.info.status == "RUNNING":
            mlflow.MlflowClient().set_terminated(last.info.run_id, "FAILED")
    except Exception as error:  # the store is still refusing writes
        log.error("could not end the interrupted MLflow run as FAILED: %s", error)
        return False
    return ended


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
    except BaseException as error:
        fault = store_fault(error) if isinstance(error, Exception) else None
        if fault is not None and not signals_seen():  # the store or its disk failed, not our code: one line
            ended = end_runs_after_fault()
            print_error(
                ProfcastError(
                    fault
                    + (
                        "; open runs ended FAILED"
                        if ended
                        else "; the store took no more writes, so the open runs stay RUNNING until it does"
                    )
                )
            )
            return 2
        if signals_seen():  # a stop that some library turned into its own error is still a stop
            end_active_runs("KILLED")
            print("profcast: stopped by a signal; open runs ended KILLED", file=sys.stderr)
            return EXIT_TERMINATED if signals_seen()[-1] == signal.SIGTERM else EXIT_INTERRUPTED
        end_active_runs("FAILED")
        raise
    finally:
        restore_handlers(previous)  # in a sweep these are the callback's own, the same handler
