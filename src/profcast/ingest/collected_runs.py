"""Every profile file's rows gathered into runs, each run once, whichever reader read the files.

Both folder readers (``tfstats`` and ``profile_files``) share it, so neither imports the other for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.schema import RUN_KEYS

log = logging.getLogger(__name__)


def collect_runs(paths: list[Path], read_rows, on_bad_file: str) -> tuple[list[dict], list, list]:
    """Every file's rows (``read_rows(path)``), each run once: (runs, skipped files, duplicate runs).

    ``"raise"`` stops at the first bad file or duplicate run; ``"skip"`` logs and lists them as
    (path, reason) and (dropped path, kept path).
    """
    runs, skipped, duplicates, first_path_of_run = [], [], [], {}
    for path in paths:
        try:
            rows = read_rows(path)
        except ProfcastError as problem:
            if on_bad_file == "raise":
                raise
            log.warning("skipped %s", problem)
            skipped.append((str(path), str(problem).removeprefix(f"{path}: ")))
            continue
        for row in rows:
            run = tuple(row[k] for k in RUN_KEYS)
            if run in first_path_of_run:
                kept = first_path_of_run[run]
                if on_bad_file == "raise":
                    raise ProfcastError(
                        f"{path}: duplicate run {dict(zip(RUN_KEYS, run))}, already read from {kept}; "
                        "keep one file per run or pass on_bad_file='skip' to keep the first"
                    )
                log.warning("skipped duplicate run %s in %s (kept %s)", dict(zip(RUN_KEYS, run)), path, kept)
                duplicates.append((str(path), kept))
                continue
            first_path_of_run[run] = str(path)
            runs.append(row)
    return runs, skipped, duplicates
