"""A fitted model saved once and reused, keyed by the data files it was fitted on and its settings.

``--target-gpu`` fits a model (the per-call model, the kernel model) on a data folder with the target's
own rows left out: tens of seconds that depend only on those files, the GPU left out and the model's
settings. An entry ``<cache>/<kind>/<fingerprint>/`` holds the model as a skops file (loaded with
profcast's trusted types, never pickle) and any JSON beside it. The fingerprint hashes each file's path,
size and modification time under the folders read (reading thousands of files' bytes would cost more
than the fit it saves), with a salt naming the GPU left out, the settings and a version. An entry
appears whole or not at all (written beside, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from profcast.config import CACHE_ROOT
from profcast.errors import ProfcastError
from profcast.ingest.downloads import CACHE_ENV_VAR
from profcast.jobmodel.skops_io import skops_io
from profcast.jobmodel.storage import load_trusted

MODEL_FILE = "model.skops"


def files_fingerprint(folders, patterns, salt: str) -> str:
    """A hex digest of ``salt`` and every file matching ``patterns`` under ``folders`` (path, size, mtime)."""
    digest = hashlib.sha256(salt.encode())
    for folder in folders:
        folder = Path(folder)
        for pattern in patterns:
            for path in sorted(folder.rglob(pattern)):
                if path.is_file():
                    stat = path.stat()
                    digest.update(f"{folder}|{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cache_entry(kind: str, fingerprint: str, cache_dir=None) -> Path:
    """``<cache>/<kind>/<fingerprint>``; the cache is ``cache_dir``, else ``$PROFCAST_CACHE_DIR``, else profcast's."""
    return Path(cache_dir or os.environ.get(CACHE_ENV_VAR) or CACHE_ROOT) / kind / fingerprint


def cached_fit(entry: Path, fit, model_type, json_files=()):
    """(model, {name: parsed JSON}) from ``entry``, else from ``fit()`` (returning the same pair), then saved.

    ``json_files`` names the JSON files an entry must hold besides the model; a model of another type
    than ``model_type`` is one line naming the entry to delete.
    """
    names = [MODEL_FILE, *json_files]
    if all((entry / name).is_file() for name in names):
        model = load_trusted(entry / MODEL_FILE)
        if not isinstance(model, model_type):
            raise ProfcastError(f"{entry / MODEL_FILE}: not a {model_type.__name__}; delete {entry} to refit")
        return model, {name: json.loads((entry / name).read_text()) for name in json_files}
    model, documents = fit()
    _save(entry, model, documents)
    return model, documents


def _save(entry: Path, model, documents: dict) -> None:
    """Write the entry beside its final name and rename it there; a failed write leaves no entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        skops_io().dump(model, staging / MODEL_FILE)
        for name, document in documents.items():
            (staging / name).write_text(json.dumps(document))
        os.replace(staging, entry)
    except OSError:
        # a concurrent first use renamed its entry first (or the disk is read-only): the forecast still stands
        shutil.rmtree(staging, ignore_errors=True)
