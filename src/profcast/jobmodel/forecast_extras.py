"""Store a job model's per-target interval and size what-if beside its regressors (skops files, no pickle).

Each target's extras (profcast.pipeline.calibration.target_extras: a dict of ConformalInterval,
SizeWhatIf, flags) are one ``target<N>.extras.skops`` file listed in the manifest under
``extras_files``. A job model logged before this existed has no such key and loads without extras.
"""

from __future__ import annotations

import logging
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.jobmodel.skops_io import skops_io
from profcast.schema import BATCH_LATENCY

log = logging.getLogger(__name__)

EXTRAS_KEY = "extras_files"  # manifest key: target -> extras file name
QUANTITY_KEY = "interval_quantity"  # manifest key: what the interval bounds (batch_latency | predicted_total)


def save_extras(folder: Path, extras: dict | None, target_files: dict) -> dict:
    """Write each target's extras next to its regressor; return the manifest entries to add."""
    skops = skops_io()  # imported at the first model file read or written

    if not extras:
        return {}
    extras = dict(extras)
    quantities = {value["quantity"] for value in extras.values() if value}
    quantity = BATCH_LATENCY if BATCH_LATENCY in quantities else next(iter(quantities), None)
    for target, value in extras.items():
        if value and value["quantity"] != quantity:  # one quantity per model: the others' bounds would be misread
            log.warning(
                "%s: its interval bounds %s, the model's others %s; it answers null bounds",
                target,
                value["quantity"],
                quantity,
            )
            extras[target] = {**value, "quantity": quantity, "interval": None, "whatif_interval": None}
    files = {}
    for target, regressor_file in target_files.items():
        if target in extras and extras[target] is not None:
            files[target] = Path(regressor_file).stem + ".extras.skops"
            skops.dump(extras[target], Path(folder) / files[target])
    return {EXTRAS_KEY: files, QUANTITY_KEY: quantity}


def extras_paths(folder: Path, manifest: dict) -> dict[str, Path]:
    """Target -> extras file inside ``folder`` (never a path outside); empty for a model without extras."""
    files = manifest.get(EXTRAS_KEY) or {}
    if not isinstance(files, dict):
        raise ProfcastError(f"{folder}: not a profcast job model folder ('{EXTRAS_KEY}' is not a mapping)")
    paths = {target: Path(folder) / Path(str(name)).name for target, name in files.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise ProfcastError(f"{folder}: job model files missing: {', '.join(missing)}")
    return paths


def load_extras(folder: Path, manifest: dict, load_trusted) -> dict:
    """Target -> extras dict, each file read by ``load_trusted(path)`` (the job model's trusted-type loader)."""
    extras = {}
    for target, path in extras_paths(folder, manifest).items():
        extras[target] = load_trusted(path)
        if not isinstance(extras[target], dict):
            raise ProfcastError(
                f"{path}: not a profcast extras file (holds a {type(extras[target]).__name__}, not a dict)"
            )
    return extras
