"""The per-call model for an unmeasured GPU, fitted once per calls folder and reused from a cache.

``src.predict --target-gpu`` needs a per-call model fitted on every measured GPU but the target,
and the leave-one-GPU-out errors that calibrate its interval: nine fits, 20-60 s on two busy cores.
Both depend only on the calls folder's files, the GPU left out and the model's parameters, so they
are saved under ``<cache>/per-call/<fingerprint>/`` (``forecast/fitted_cache``: the model as a skops
file, the errors as JSON) and read back at the next call. The fingerprint covers each label file's and
device config's path, size and modification time (the folder's ``READ_FOLDERS``), the GPU left out,
the parameters and ``CACHE_VERSION``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from profcast.forecast.fitted_cache import cache_entry, cached_fit, files_fingerprint
from profcast.ingest.device_figures import DEVICE_CONFIGS, TEST_DEVICE_CONFIGS
from profcast.regressors.per_call import PerCallModel

CACHE_VERSION = 4  # bump when PerCallModel's features or fit change (3: the entry's files renamed; 4: the step gap)
ERRORS_FILE = "logo_log_errors.json"
FINGERPRINTED = ("*.csv", "*.json")
# what read_call_folder and neusight_device_figures read of a NeuSight checkout (not its kernel tables)
READ_FOLDERS = ("scripts/asplos/label", str(DEVICE_CONFIGS), str(TEST_DEVICE_CONFIGS))


def calls_fingerprint(folder, left_out: str, params: dict) -> str:
    """A hex digest of the calls folder's files (path, size, mtime), the GPU left out and the parameters."""
    folder = Path(folder)
    read = [folder / part for part in READ_FOLDERS if (folder / part).is_dir()] or [folder]
    salt = f"v{CACHE_VERSION}|{left_out}|{json.dumps(params, sort_keys=True)}"
    return files_fingerprint(read, FINGERPRINTED, salt)


def cached_per_call_model(folder, left_out: str, fit, params=None, cache_dir=None) -> tuple[PerCallModel, pd.Series]:
    """(model, leave-one-GPU-out log errors by GPU) from the cache, else from ``fit()``, then saved.

    ``fit`` is called only on a miss and returns the same pair; ``cache_dir`` defaults to ``$PROFCAST_CACHE_DIR``, else profcast's cache.
    """
    entry = cache_entry("per-call", calls_fingerprint(folder, left_out, params or {}), cache_dir)

    def fit_and_document():
        model, errors = fit()
        return model, {ERRORS_FILE: {"gpu": [str(g) for g in errors.index], "log_errors": [float(e) for e in errors]}}

    model, documents = cached_fit(entry, fit_and_document, PerCallModel, json_files=(ERRORS_FILE,))
    errors = documents[ERRORS_FILE]
    return model, pd.Series(errors["log_errors"], index=pd.Index(errors["gpu"], name="gpu"), dtype=float)
