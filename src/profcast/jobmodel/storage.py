"""A job model on disk: one skops file per target's regressor and a JSON manifest, read back without pickle.

Only the types in ``TRUSTED_TYPES`` (fixed here, never read from the files being trusted) and profcast's
own estimators may be built from a skops file. Models logged before the package was called
``profcast`` name their estimators ``src.models.*``: ``profcast.jobmodel.legacy`` maps those names.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from profcast.errors import ProfcastError, first_line
from profcast.jobmodel.forecast_extras import QUANTITY_KEY, extras_paths, load_extras, save_extras
from profcast.jobmodel.legacy import current_type_name, legacy_names_resolved
from profcast.jobmodel.model import JobModel, use_one_thread
from profcast.jobmodel.skops_io import skops_io
from profcast.jobmodel.trained_range import RANGE_KEY, RANGES
from profcast.schema import BATCH_LATENCY, union_columns
from profcast.vocabulary import mapping_from_stored

# The module MLflow loads a job model through (the serving layer's adapter); named here for the
# tracking layer, which writes it into each logged model's MLmodel.
LOADER_MODULE = "profcast.serve.loader"
JOB_MODEL_NAME = "profcast"  # the job run's model: runs:/<job run id>/profcast
JOB_MODEL_TAG = "profcast.job_model"  # set on a job run that logged a servable model: its name
JOB_MODEL_URI_TAG = "profcast.job_model_uri"  # and its models:/<model id> URI
MANIFEST_FILE = "manifest.json"  # anchor, targets, op columns, and each target's skops file
UNMEASURED_KEY = "unmeasured_targets"  # manifest key: target -> note, for targets forecast from figures only
# Types skops may build beyond its own safe defaults: the estimators profcast trains and their parts.
TRUSTED_TYPES = frozenset(
    {
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.tree._tree.Tree",
        "sklearn.utils.validation.check_array",
    }
)
TRUSTED_PREFIXES = ("profcast.regressors.",)  # profcast's own estimators


def save_job_model(
    folder,
    anchor: str,
    models: dict,
    op_columns: list[str],
    trained_on: str | None = None,
    extras: dict | None = None,
    sizes: dict | None = None,
    vocabulary: dict | None = None,
    memory: dict | None = None,
    unmeasured: dict | None = None,
) -> dict:
    """Write every target's fitted regressor (one skops file each) and the manifest into ``folder``.

    ``op_columns`` are the anchor op columns any of the models reads. Returns the manifest; each regressor is serialised exactly once, here.
    ``extras`` (target -> interval and size what-if) go into files of their own (profcast.jobmodel.forecast_extras).
    ``sizes`` (the training rows' batch and input size range, profcast.jobmodel.trained_range) goes into the manifest.
    ``vocabulary`` (profcast.vocabulary.Vocabulary.stored: name and table, plain data) goes into the
    manifest; the loaded model maps requests with it. None: native op names, nothing stored.
    ``memory`` (profcast.jobmodel.memory_fit.memory_record: each target's peak-memory carry and device
    memory) goes into the manifest; the loaded model answers whether a job fits with it.
    ``unmeasured`` ({target: note}: targets forecast from their figures only) goes into the manifest; the
    loaded model marks their answers (``target_measured`` False, the note in ``trained_on``).
    """
    skops = skops_io()  # imported at the first model file read or written

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for number, (target, model) in enumerate(models.items()):
        files[target] = f"target{number}.skops"
        skops.dump(model, folder / files[target])
    manifest = {
        "anchor": anchor,
        "target_files": files,
        "op_columns": list(op_columns),
        "output_op_columns": union_columns(
            [c for c in model.output_columns_ if c != BATCH_LATENCY] for model in models.values()
        ),
        "predicts_latency": any(BATCH_LATENCY in model.output_columns_ for model in models.values()),
        "trained_on": trained_on,
        RANGE_KEY: sizes,
        **save_extras(folder, extras, files),
        **({"vocabulary": vocabulary} if vocabulary else {}),
        **({"memory": memory} if memory else {}),
        **({UNMEASURED_KEY: dict(unmeasured)} if unmeasured else {}),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def load_job_model_folder(folder) -> JobModel:
    """Read a folder written by ``save_job_model``; refuse a file that holds an untrusted type."""
    folder = Path(folder)
    manifest, paths = _checked_manifest(folder)
    models = {}
    for target, path in paths.items():
        models[target] = load_trusted(path)
        use_one_thread(models[target])

    model = JobModel(
        manifest["anchor"],
        models,
        manifest["op_columns"],
        manifest["output_op_columns"],
        manifest["predicts_latency"],
        manifest.get("trained_on"),
        load_extras(folder, manifest, load_trusted),
        manifest.get(QUANTITY_KEY),
        _checked_range(manifest.get(RANGE_KEY), folder),
    )
    model.vocabulary = mapping_from_stored(manifest.get("vocabulary"))
    model.memory = manifest.get("memory") if isinstance(manifest.get("memory"), dict) else None
    unmeasured = manifest.get(UNMEASURED_KEY) or {}
    if not isinstance(unmeasured, dict) or not set(unmeasured) <= set(models):
        raise ProfcastError(f"{folder}: not a profcast job model folder ('{UNMEASURED_KEY}' names no target of it)")
    model.unmeasured = {str(target): str(note) for target, note in unmeasured.items()}
    return model


def load_trusted(path: Path):
    """The object in a skops file, after ``_checked_types`` refused any type profcast does not trust."""
    skops = skops_io()  # imported at the first model file read or written

    trusted = _checked_types(path)
    try:
        with legacy_names_resolved(trusted):
            return skops.load(path, trusted=trusted)
    except Exception as error:  # skops raises several types for a damaged file
        raise ProfcastError(
            f"{path}: not a loadable skops model file ({type(error).__name__}: {first_line(error)})"
        ) from None


def check_job_model_folder(folder) -> None:
    """Check a job model's data folder without building anything: manifest whole, every file skops with trusted types."""

    manifest, paths = _checked_manifest(Path(folder))
    for path in [*paths.values(), *extras_paths(Path(folder), manifest).values()]:
        _checked_types(path)


def _checked_manifest(folder: Path) -> tuple[dict, dict]:
    """The manifest and each target's skops file path (inside ``folder``); a one-line error if incomplete."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        files = manifest["target_files"]
        for key in ("anchor", "op_columns", "output_op_columns", "predicts_latency"):
            manifest[key]
        paths = {target: folder / Path(str(name)).name for target, name in files.items()}  # never a path outside
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProfcastError(f"{folder}: not a profcast job model folder ({type(error).__name__}: {error})") from None
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if not paths or missing:
        raise ProfcastError(f"{folder}: job model files missing: {', '.join(missing) or 'no target files listed'}")
    return manifest, paths


def _checked_range(value, folder: Path) -> dict | None:
    """The manifest's trained range as {size: [min, max] | None}; a one-line error if it is not that shape."""
    if value is None:
        return None
    try:
        return {
            name: None if value.get(name) is None else [float(value[name][0]), float(value[name][1])] for name in RANGES
        }
    except (AttributeError, TypeError, ValueError, IndexError, KeyError):
        raise ProfcastError(f"{folder}: not a profcast job model folder ('{RANGE_KEY}' is not a size range)") from None


def _checked_types(path: Path) -> list[str]:
    skops = skops_io()  # imported at the first model file read or written

    try:
        found = skops.get_untrusted_types(file=path)
    except Exception as error:  # skops raises several types for a damaged file
        raise ProfcastError(f"{path}: not a readable skops model file ({error})") from None
    refused = [name for name in found if not _trusted(current_type_name(name))]
    if refused:
        raise ProfcastError(f"{path}: refusing to load types profcast does not trust: {', '.join(refused)}")
    return found


def _trusted(type_name: str) -> bool:
    """A type skops may build: one of ``TRUSTED_TYPES``, or a class defined in a ``profcast.regressors`` module
    (not a name it merely imports, such as ``profcast.regressors.transfer.np``)."""
    if type_name in TRUSTED_TYPES:
        return True
    if not type_name.startswith(TRUSTED_PREFIXES):
        return False

    module_name, _, attribute = type_name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute, None)
    except ImportError:
        return False
    return isinstance(found, type) and found.__module__ == module_name
