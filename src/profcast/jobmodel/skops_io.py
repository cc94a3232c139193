"""``skops.io`` imported without the array libraries its import would drag in (torch: seconds per command).

skops lists its trusted sklearn types at import time with ``sklearn.utils.all_estimators()``, which walks
every sklearn package; the walk imports ``sklearn.externals.array_api_compat.torch`` (and its cupy and
dask siblings), and that shim imports torch itself: 2-3 s of CPU on these machines, most of a cached
``profcast predict --target-gpu`` answer. Those shims define no estimator, so the trusted-type list is the
same without them: while skops is imported they stand in ``sys.modules`` as empty modules the walk
does not descend into, and are removed afterwards, so a later real use imports them as usual.
"""

from __future__ import annotations

import sys
import types

ARRAY_SHIMS = tuple(f"sklearn.externals.array_api_compat.{name}" for name in ("torch", "cupy", "dask"))


def skops_io():
    """The ``skops.io`` module, imported (the first time) without importing torch, cupy or dask."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    stand_ins = [name for name in ARRAY_SHIMS if name not in sys.modules]
    for name in stand_ins:
        sys.modules[name] = types.ModuleType(name, "stand-in while skops lists sklearn's estimators")
    try:
        import skops.io  # noqa: PLC0415  skops, only when a model file is read or written
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
    return skops.io
