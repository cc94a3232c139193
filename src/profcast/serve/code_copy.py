"""Keep the importing process's profcast when MLflow loads a job model in-process.

``mlflow.pyfunc.load_model`` puts the model's own copy of profcast (its ``code_paths``, the folder
``code`` beside ``MLmodel``) first on ``sys.path`` and leaves it there. In a process that already has
profcast (a notebook, a test run, a benchmark) the copy would then shadow it for everything imported
later, including the worker processes that inherit ``sys.path``: Hydra would look for ``conf/`` in the
copy, which ships no configs. The copy is only needed where no other profcast exists, as inside
``mlflow models serve`` in the model's own environment.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

# This module's own profcast: src/profcast (a checkout or an install) or <model>/code/profcast (a model's copy).
RUNNING_PROFCAST = Path(__file__).resolve().parents[1]


def is_model_code_copy(path_entry: str) -> bool:
    """Whether a ``sys.path`` entry is a logged model's code folder holding a copy of profcast."""
    folder = Path(path_entry or ".")
    return (folder / "profcast" / "serve" / "loader.py").is_file() and (folder.parent / "MLmodel").is_file()


def other_profcast(path_entries: list[str]) -> Path | None:
    """The profcast package ``path_entries`` would import, or None when they hold none."""
    spec = importlib.machinery.PathFinder.find_spec("profcast", path_entries)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def drop_model_code_copies() -> Path | None:
    """Take every model's copy of profcast off ``sys.path`` unless it is the only profcast there is.

    Returns the profcast this process should use instead of the running copy, when this module is
    itself a model's copy and another profcast is importable (the caller then loads with that one);
    otherwise None.
    """
    copies = [entry for entry in sys.path if is_model_code_copy(entry)]
    if not copies:
        return None
    remaining = [entry for entry in sys.path if entry not in copies]
    installed = other_profcast(remaining)
    if installed is None:
        return None  # the copy is the only profcast here (mlflow models serve in the model's environment)
    sys.path[:] = remaining
    return installed if installed != RUNNING_PROFCAST else None


def forget_imported_copy() -> None:
    """Drop every profcast module imported from a copy, so the next import finds the process's own."""
    for name in [name for name in sys.modules if name == "profcast" or name.startswith("profcast.")]:
        del sys.modules[name]
