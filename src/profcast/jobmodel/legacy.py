"""Job models logged before the package was named ``profcast`` (loader ``src.serve.job_model``).

Their skops files name profcast's estimators ``src.models.<module>.<Class>``. Such a name is trusted only
as the ``profcast.regressors`` class it stands for, and while the file loads, ``src.models.<module>`` resolves
to that ``profcast.regressors`` module: nothing named ``src`` is imported from ``sys.path``.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager

LEGACY_LOADER_MODULE = "src.serve.job_model"  # MLmodel's loader_module before the rename
# Where profcast's estimators lived when older models were saved; each now means CURRENT_PREFIX.
LEGACY_PREFIXES = ("src.models.", "profcast.models.")
CURRENT_PREFIX = "profcast.regressors."


def current_type_name(type_name: str) -> str:
    """``src.models.ratio.X`` -> ``profcast.regressors.ratio.X`` (any of LEGACY_PREFIXES); any other name unchanged."""
    for prefix in LEGACY_PREFIXES:
        if type_name.startswith(prefix):
            return CURRENT_PREFIX + type_name.removeprefix(prefix)
    return type_name


@contextmanager
def legacy_names_resolved(type_names):
    """While inside: each ``src.models.<module>`` of ``type_names`` is the matching ``profcast.regressors`` module."""
    added = []
    for name in type_names:
        if not name.startswith(LEGACY_PREFIXES):
            continue
        legacy_module = name.rpartition(".")[0]
        if legacy_module in sys.modules:
            continue
        try:
            sys.modules[legacy_module] = importlib.import_module(current_type_name(legacy_module))
        except ImportError:
            continue  # the load then fails on this type, with skops's one-line reason
        added.append(legacy_module)
    try:
        yield
    finally:
        for legacy_module in added:
            sys.modules.pop(legacy_module, None)
