"""The servable job model: every target's fitted regressor behind one ``predict``, loaded without pickle.

It takes anchor profiles (one row per profiled run) and returns one row per (input row, target
instance): the predicted op vector, batch latency and vector total. MLflow loads it through this
module (``loader_module``), so no Python object is unpickled from the model folder: each target's
regressor is a skops file, and only the types in ``TRUSTED_TYPES`` (fixed here, never read from the
files being trusted) may be built from it.

    mlflow models serve -m models:/profcast-g3s.xlarge@champion --env-manager local
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError, first_line
from profcast.schema import BATCH_LATENCY, union_columns
from profcast.serve.answer_format import requested_shape, shaped_answer
from profcast.serve.one_thread import OpenMPLimit
from profcast.serve.shared_neighbours import shared_neighbour_groups
from profcast.serve.requests import (
    INPUT_ROW,
    PREDICTED_TOTAL,
    TARGET_INSTANCE,
    TRAINED_ON,
    checked_anchor_profiles,
    requested_targets,
    unknown_columns,
)

log = logging.getLogger(__name__)

JOB_MODEL_NAME = "profcast"  # the job run's model: runs:/<job run id>/profcast
JOB_MODEL_TAG = "profcast.job_model"  # set on a job run that logged a servable model: its name
JOB_MODEL_URI_TAG = "profcast.job_model_uri"  # and its models:/<model id> URI
MANIFEST_FILE = "manifest.json"  # anchor, targets, op columns, and each target's skops file
# Types skops may build beyond its own safe defaults: the estimators profcast trains and their parts.
TRUSTED_TYPES = frozenset({
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
})
TRUSTED_PREFIXES = ("profcast.models.",)  # profcast's own estimators


class JobModel:
    """Predicts every target instance's profile from an anchor profile, with named columns."""

    def __init__(self, anchor: str, models: dict, op_columns: list[str], output_op_columns: list[str], predicts_latency: bool,
                 trained_on: str | None = None, extras: dict | None = None, interval_quantity: str | None = None):
        self.anchor = anchor
        self.models = models
        self.targets = list(models)
        self.op_columns = op_columns
        self.output_op_columns = output_op_columns
        self.predicts_latency = predicts_latency
        self.trained_on = trained_on  # e.g. "generated data: embedded generated data (...) (fingerprint ...)"
        self.extras = extras or {}  # target -> interval and size what-if (profcast.serve.forecast_extras); empty for older models
        self.interval_quantity = interval_quantity  # batch_latency | predicted_total: what the interval bounds
        self._one_thread = OpenMPLimit()
        # Where each model's outputs land in the answer, worked out once instead of per request.
        position = {column: number for number, column in enumerate(output_op_columns)}
        self._layout = {}
        for target, model in models.items():
            outputs = list(model.output_columns_)
            ops = [number for number, column in enumerate(outputs) if column in position]
            self._layout[target] = (np.array(ops, dtype=np.intp), np.array([position[outputs[n]] for n in ops], dtype=np.intp),
                                    outputs.index(BATCH_LATENCY) if BATCH_LATENCY in outputs else None)
        self._shared_searches = shared_neighbour_groups(models)  # kNN targets fitted on the same anchor rows
        self.vocabulary = None  # a canonical model's profcast.vocabulary.Mapping: requests are mapped with it

    def get_raw_model(self):
        """This object (MLflow's PyFuncModel.get_raw_model hands it out: profcast.predict reads the vocabulary)."""
        return self

    def predict(self, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per (request row, target): target_instance, op columns, batch_latency, total.

        ``params={"output": "columns" | "totals"}`` asks for another shape (profcast.serve.answer_format).

        Bad requests raise MlflowException(INVALID_PARAMETER_VALUE) (HTTP 400 when served); any other
        failure is logged with its traceback and answered as one line, never a stack trace in the body.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            shape = requested_shape(params)
            with self._one_thread():
                return shaped_answer(_finite_answer(self._predict(model_input)), shape, self.output_op_columns)
        except MlflowException:
            raise
        except ProfcastError as error:  # a bad request: the scoring server answers it with HTTP 400
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as error:  # a regressor failing on an input that passed the checks
            log.exception("prediction failed")
            raise MlflowException(f"the model could not predict from this request ({type(error).__name__}: "
                                  f"{first_line(error)})", error_code=INVALID_PARAMETER_VALUE) from None

    def _predict(self, model_input: pd.DataFrame) -> pd.DataFrame:
        profiles = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        profiles = profiles.reset_index(drop=True)  # error messages count rows from 0
        if self.vocabulary is not None:
            profiles = _in_model_vocabulary(profiles, self.vocabulary, self.anchor)
        ignored = unknown_columns(profiles.columns, self.op_columns)
        if ignored:
            log.warning("ignored column(s) never seen in training: %s", ", ".join(map(str, ignored)))
        anchor_profiles = checked_anchor_profiles(profiles, self.op_columns, self.anchor)
        wanted = requested_targets(profiles, self.targets)
        every_target = bool(wanted.isna().all())
        shared = {}
        if every_target:  # a request for a subset of targets takes the per-target path
            for group in self._shared_searches:
                shared.update(group.predict(anchor_profiles))
        parts = []
        for rank, target in enumerate(self.targets):
            if every_target:
                rows, request = np.arange(len(anchor_profiles)), anchor_profiles
            else:
                rows = np.flatnonzero((wanted.isna() | (wanted == target)).to_numpy())
                request = anchor_profiles.iloc[rows]
            if rows.size:
                parts.append((rank, rows, self._predict_target(target, request, shared.get(target))))
        from profcast.serve.forecast_columns import add_forecast_columns

        return add_forecast_columns(self._answer(parts), profiles, anchor_profiles, self)

    def _predict_target(self, target: str, anchor_profiles: pd.DataFrame, raw=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This target's op times in ``output_op_columns`` order, its batch latency (NaN if none), its totals.

        ``raw`` is the target model's prediction when it was already made (a shared neighbour search).
        """
        if raw is None:
            raw = self.models[target].predict(anchor_profiles)
        raw = np.asarray(raw, dtype=float).reshape(len(anchor_profiles), -1)
        source, destination, latency_at = self._layout[target]
        # An op this target's model lacks is 0; op times cannot be negative (evaluation clips them too).
        # Column-major like the pandas frame the totals were always summed from: numpy adds up a
        # row in another order (last bits differ) when the row is contiguous in memory.
        ops = np.zeros((len(raw), len(self.output_op_columns)), order="F")
        ops[:, destination] = raw[:, source]
        np.clip(ops, 0.0, None, out=ops)
        latency = raw[:, latency_at] if latency_at is not None else np.full(len(raw), np.nan)
        return ops, latency, ops.sum(axis=1)

    def _answer(self, parts: list) -> pd.DataFrame:
        """One frame ordered by request row, then target, built from numpy blocks in one go."""
        ranks = np.concatenate([np.full(rows.size, rank) for rank, rows, _ in parts])
        rows = np.concatenate([rows for _, rows, _ in parts]).astype("int64")
        ops, latency, total = (np.concatenate([predicted[part] for _, _, predicted in parts]) for part in range(3))
        order = np.lexsort((ranks, rows))
        ops, latency, total, rows, ranks = ops[order], latency[order], total[order], rows[order], ranks[order]
        frame = pd.DataFrame(ops, columns=self.output_op_columns)
        frame.insert(0, INPUT_ROW, rows)
        frame.insert(1, TARGET_INSTANCE, np.array(self.targets, dtype=object)[ranks])
        if self.predicts_latency:
            frame[BATCH_LATENCY] = latency
        frame[PREDICTED_TOTAL] = total
        if self.trained_on is not None:
            frame[TRAINED_ON] = self.trained_on
        return frame


def _in_model_vocabulary(profiles: pd.DataFrame, mapping, anchor: str) -> pd.DataFrame:
    """A request's op columns mapped as in training (profcast.vocabulary); its values checked first, so a
    bad cell is named by the request's own column."""
    from profcast.serve.requests import DESCRIPTIVE_COLUMNS, SIZE_COLUMNS
    from profcast.schema import op_columns
    from profcast.vocabulary import to_canonical, unmapped_note

    keep = {*DESCRIPTIVE_COLUMNS, TARGET_INSTANCE, *SIZE_COLUMNS, INPUT_ROW, TRAINED_ON}
    native = [column for column in op_columns(profiles.columns) if column not in keep]
    if native:
        checked_anchor_profiles(profiles, native, anchor)
    mapped, unmapped = to_canonical(profiles, mapping, keep=keep)
    if not unmapped.empty:
        log.warning("%s", unmapped_note(unmapped))
    return mapped


def _finite_answer(predicted: pd.DataFrame) -> pd.DataFrame:
    """Refuse an answer JSON cannot carry: a non-finite op time is a 400; a latency not predicted is null."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from profcast.serve.forecast_columns import added_columns

    nullable = [BATCH_LATENCY, *added_columns(predicted)]  # may be unknown: null, not an error
    numbers = predicted.drop(columns=[INPUT_ROW, TARGET_INSTANCE, TRAINED_ON, *nullable], errors="ignore").to_numpy(dtype=float)
    bad = ~np.isfinite(numbers).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MlflowException(
            f"the prediction for request row {predicted[INPUT_ROW].iloc[row]} on {predicted[TARGET_INSTANCE].iloc[row]} is not a "
            "finite number; the request's op times are far outside what the model was trained on",
            error_code=INVALID_PARAMETER_VALUE,
        )
    for column in nullable:
        if column in predicted and not np.isfinite(predicted[column].to_numpy(dtype=float)).all():
            values = predicted[column].astype(object)
            predicted[column] = values.where(np.isfinite(predicted[column].to_numpy(dtype=float)), None)
    return predicted


def use_one_thread(estimator) -> None:
    """Set ``n_jobs=1`` on ``estimator`` and every estimator inside it (forests, KNN, wrapped models).

    A served request is a few rows: starting a thread pool per call costs far more than the
    prediction. With one thread a forest also sums its trees in their fixed order on every call.
    """
    from sklearn.base import BaseEstimator

    seen, pending = set(), [estimator]
    while pending:
        part = pending.pop()
        if id(part) in seen or not isinstance(part, BaseEstimator):
            continue
        seen.add(id(part))
        if "n_jobs" in vars(part):
            part.n_jobs = 1
        pending.extend(value for value in vars(part).values() if isinstance(value, BaseEstimator))


def save_job_model(folder, anchor: str, models: dict, op_columns: list[str], trained_on: str | None = None,
                   extras: dict | None = None, vocabulary: dict | None = None) -> dict:
    """Write every target's fitted regressor (one skops file each) and the manifest into ``folder``.

    ``op_columns`` are the anchor op columns any of the models reads. Returns the manifest; each regressor is serialised exactly once, here.
    ``extras`` (target -> interval and size what-if) go into files of their own (profcast.serve.forecast_extras).
    ``vocabulary`` (profcast.vocabulary.Vocabulary.stored: name and table, plain data) goes into the
    manifest; the loaded model maps requests with it. None: native op names, nothing stored.
    """
    from profcast.serve.forecast_extras import save_extras

    import skops.io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for number, (target, model) in enumerate(models.items()):
        files[target] = f"target{number}.skops"
        skops.io.dump(model, folder / files[target])
    manifest = {
        "anchor": anchor,
        "target_files": files,
        "op_columns": list(op_columns),
        "output_op_columns": union_columns([c for c in model.output_columns_ if c != BATCH_LATENCY] for model in models.values()),
        "predicts_latency": any(BATCH_LATENCY in model.output_columns_ for model in models.values()),
        "trained_on": trained_on,
        **save_extras(folder, extras, files),
        **({"vocabulary": vocabulary} if vocabulary else {}),
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
    from profcast.serve.forecast_extras import QUANTITY_KEY, load_extras
    from profcast.vocabulary import mapping_from_stored

    model = JobModel(manifest["anchor"], models, manifest["op_columns"], manifest["output_op_columns"], manifest["predicts_latency"],
                     manifest.get("trained_on"), load_extras(folder, manifest, load_trusted), manifest.get(QUANTITY_KEY))
    model.vocabulary = mapping_from_stored(manifest.get("vocabulary"))
    return model


def load_trusted(path: Path):
    """The object in a skops file, after ``_checked_types`` refused any type profcast does not trust."""
    import skops.io

    trusted = _checked_types(path)
    try:
        return skops.io.load(path, trusted=trusted)
    except Exception as error:  # skops raises several types for a damaged file
        raise ProfcastError(f"{path}: not a loadable skops model file ({type(error).__name__}: {first_line(error)})") from None


def check_job_model_folder(folder) -> None:
    """Check a job model's data folder without building anything: manifest whole, every file skops with trusted types."""
    from profcast.serve.forecast_extras import extras_paths

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


def _load_pyfunc(data_path: str) -> JobModel:
    """MLflow's entry point for ``loader_module`` models: the job model from its data folder."""
    return load_job_model_folder(data_path)


def _checked_types(path: Path) -> list[str]:
    import skops.io

    try:
        found = skops.io.get_untrusted_types(file=path)
    except Exception as error:  # skops raises several types for a damaged file
        raise ProfcastError(f"{path}: not a readable skops model file ({error})") from None
    refused = [name for name in found if name not in TRUSTED_TYPES and not name.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ProfcastError(f"{path}: refusing to load types profcast does not trust: {', '.join(refused)}")
    return found
