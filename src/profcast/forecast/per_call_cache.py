"""The per-call model for an unmeasured GPU, fitted once per calls folder and reused from a cache.

``src.predict --target-gpu`` needs a per-call model fitted on every measured GPU but the target,
and the leave-one-GPU-out errors that calibrate its interval: nine fits, 20-60 s on two busy cores.
Both depend only on the calls folder's files, the GPU left out and the model's parameters, so they
are saved under ``<cache>/per-call/<fingerprint>/`` (the model as a skops file loaded with profcast's
trusted types, the errors as JSON) and read back at the next call. The fingerprint hashes each label
file's and device config's path, size and modification time (the folder's ``READ_FOLDERS``) (reading 5,000 files' contents would
cost more than the fit it saves), the GPU left out, the parameters and ``CACHE_VERSION``; a folder
appears whole or not at all (written beside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.config import CACHE_ROOT
from profcast.errors import ProfcastError
from profcast.ingest.device_figures import DEVICE_CONFIGS, TEST_DEVICE_CONFIGS
from profcast.ingest.downloads import CACHE_ENV_VAR
from profcast.jobmodel.storage import load_trusted
from profcast.regressors.per_call import PerCallModel

CACHE_VERSION = 3  # bump when PerCallModel's features or fit change
MODEL_FILE = "per_call_model.skops"
ERRORS_FILE = "logo_log_errors.json"
FINGERPRINTED = ("*.csv", "*.json")
# what read_call_folder and neusight_device_figures read of a NeuSight checkout (not its kernel tables)
READ_FOLDERS = ("scripts/asplos/label", str(DEVICE_CONFIGS), str(TEST_DEVICE_CONFIGS))


def calls_fingerprint(folder, left_out: str, params: dict) -> str:
    """A hex digest of the calls folder's files (path, size, mtime), the GPU left out and the parameters."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{left_out}|{json.dumps(params, sort_keys=True)}".encode())
    folder = Path(folder)
    read = [folder / part for part in READ_FOLDERS if (folder / part).is_dir()] or [folder]
    for pattern in FINGERPRINTED:
        for path in sorted(p for root in read for p in root.rglob(pattern)):
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cached_per_call_model(folder, left_out: str, fit, params=None, cache_dir=None) -> tuple[PerCallModel, pd.Series]:
    """(model, leave-one-GPU-out log errors by GPU) from the cache, else from ``fit()``, then saved.

    ``fit`` is called only on a miss and returns the same pair; ``cache_dir`` defaults to ``$PROFCAST_CACHE_DIR``, else profcast's cache.
    """
    params = params or {}
    parent = cache_dir or os.environ.get(CACHE_ENV_VAR) or CACHE_ROOT
    entry = Path(parent) / "per-call" / calls_fingerprint(folder, left_out, params)
    if (entry / MODEL_FILE).is_file() and (entry / ERRORS_FILE).is_file():
        model = load_trusted(entry / MODEL_FILE)
        if not isinstance(model, PerCallModel):
            raise ProfcastError(f"{entry / MODEL_FILE}: not a per-call model; delete {entry} to refit")
        errors = json.loads((entry / ERRORS_FILE).read_text())
        return model, pd.Series(errors["log_errors"], index=pd.Index(errors["gpu"], name="gpu"), dtype=float)
    model, errors = fit()
    _save(entry, model, errors)
    return model, errors


def _save(entry: Path, model: PerCallModel, errors: pd.Series) -> None:
    """Write the entry beside its final name and rename it there; a failed write leaves no entry."""
    import skops.io  # noqa: PLC0415  skops, only when a model file is read or written

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        skops.io.dump(model, staging / MODEL_FILE)
        payload = {"gpu": [str(g) for g in errors.index], "log_errors": np.asarray(errors, dtype=float).tolist()}
        (staging / ERRORS_FILE).write_text(json.dumps(payload))
        os.replace(staging, entry)
    except OSError:
        # a concurrent first use renamed its entry first (or the disk is read-only): the forecast still stands
        shutil.rmtree(staging, ignore_errors=True)
