"""Run ``profcast train ARGS`` with a stopwatch on each phase; write the seconds as JSON.

    python -m benchmarks.phase_timer OUT.json -- -m regressor=rf,knn anchor=g3s.xlarge

Phases (summed over every job of a -m sweep): ``load`` (read the data), ``pair`` (pair anchor and
target runs), ``fit`` (cross_validate: fold fits, held-out predictions, the refit), ``score``
(metrics), ``train`` (all of ``profcast.train.train``); ``log`` is what ``train`` spent outside the
others (MLflow runs, artifacts, figures, the job model). Used by benchmarks.speed.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path


def stopwatch(seconds: dict, phase: str, function):
    """``function`` that adds its run time to ``seconds[phase]``."""

    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[phase] += time.perf_counter() - started

    return timed


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out, train_args = argv[0], argv[argv.index("--") + 1 :]
    import profcast.datasets.sources as sources
    import profcast.pipeline.job as job_module
    import profcast.train as train_module

    seconds = defaultdict(float)
    for source in (sources.EmbeddedData, sources.FileData, sources.ProfetData):
        source.load = stopwatch(seconds, "load", source.load)
    for name, phase in (("pair_runs", "pair"), ("cross_validate", "fit"), ("score", "score"), ("train", "train")):
        for module in (job_module, train_module):  # the job's core calls the phases; the command calls train
            if hasattr(module, name):
                setattr(module, name, stopwatch(seconds, phase, getattr(module, name)))

    def write() -> None:
        seconds["log"] = seconds["train"] - sum(seconds[phase] for phase in ("load", "pair", "fit", "score"))
        with open(out, "w", encoding="utf-8") as file:
            json.dump(seconds, file)

    atexit.register(write)  # Hydra's main may end the process with sys.exit
    # Called from here rather than as __main__, Hydra would look for conf/ as a Python package.
    conf = Path(train_module.__file__).resolve().parent / "conf"
    sys.argv = ["profcast.train", "--config-path", str(conf), *train_args]
    train_module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
