"""One servable MLflow model per training job: the job's fitted regressor for every target.

The model takes anchor profiles (a DataFrame, one row per profiled run) and returns one row per
(input row, target instance): the predicted op vector, predicted batch latency and vector total.

    mlflow models serve -m runs:/<job run id>/profcast --env-manager local

Requests are checked here, not left to fail inside a regressor: a request MLflow can parse but
that makes no sense (no known op column, a negative/NaN/infinite time, an unknown target) raises
MlflowException(INVALID_PARAMETER_VALUE), which the scoring server answers with HTTP 400.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema

from src.profiles import BAD_NUMBER_WORDING, parse_numbers, shown_value
from src.schema import BATCH_LATENCY
from src.regressors import op_part

log = logging.getLogger("profcast")

JOB_MODEL_NAME = "profcast"  # the job run's model: runs:/<job run id>/profcast
JOB_MODEL_TAG = "profcast.job_model"  # set on a job run that logged a servable model: its name
JOB_MODEL_URI_TAG = "profcast.job_model_uri"  # and its models:/<model id> URI
TARGET_INSTANCE = "target_instance"  # optional request column: predict for this target only
INPUT_ROW = "input_row"  # output column: which request row a prediction belongs to
PREDICTED_TOTAL = "predicted_total"  # output column: sum of the predicted op vector (us)
# Columns of a training-table row that describe the run but are not op times; accepted and unused.
DESCRIPTIVE_COLUMNS = {
    "exp_name": "string", "instance_name": "string", "dataset": "string",
    "model": "string", "optimizer": "string", "batchsize": "long", "epoch_latency": "double",
}
ESTIMATORS_ARTIFACT = "estimators"  # skops file: {target instance: fitted regressor}
MANIFEST_ARTIFACT = "manifest"  # JSON: anchor, targets, op columns, types skops must trust
# What an accepted value looks like, appended to each bad-value message.
VALUE_RULES = {
    "op": "op times must be finite numbers >= 0 (an op that did not run is 0 or left out)",
    BATCH_LATENCY: "batch_latency is the anchor's measured seconds per step: a finite number >= 0, or null",
}


# A request's missing cell most often comes from records that list different ops.
MISSING_IN_REQUEST = (
    "is missing (null/NaN); give 0 for an op that did not run "
    "(in dataframe_records, every record must list the same op columns)"
)


def _bad_request(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class ProfcastJobModel(mlflow.pyfunc.PythonModel):
    """Predicts every target instance's profile from an anchor profile, with named columns."""

    def load_context(self, context) -> None:
        import skops.io

        manifest = json.loads(Path(context.artifacts[MANIFEST_ARTIFACT]).read_text(encoding="utf-8"))
        self.anchor = manifest["anchor"]
        self.op_columns = manifest["op_columns"]
        self.output_op_columns = manifest["output_op_columns"]
        self.predicts_latency = manifest["predicts_latency"]
        # Only the types recorded when the job saved the file are trusted; anything else is refused.
        self.models = skops.io.load(context.artifacts[ESTIMATORS_ARTIFACT], trusted=manifest["skops_trusted_types"])
        self.targets = list(manifest["targets"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per (request row, target): target_instance, op columns, batch_latency, total."""
        profiles = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        profiles = profiles.reset_index(drop=True)  # error messages count rows from 0
        ignored = unknown_columns(profiles.columns, self.op_columns)
        if ignored:
            log.warning("ignored column(s) never seen in training: %s", ", ".join(map(str, ignored)))
        anchor_profiles = checked_anchor_profiles(profiles, self.op_columns, self.anchor)
        wanted = requested_targets(profiles, self.targets)
        parts = []
        for target in self.targets:
            rows = np.flatnonzero((wanted.isna() | (wanted == target)).to_numpy())
            if rows.size:
                parts.append(self._predict_target(target, anchor_profiles.iloc[rows], rows))
        predicted = pd.concat(parts, ignore_index=True)
        target_rank = predicted[TARGET_INSTANCE].map({target: rank for rank, target in enumerate(self.targets)})
        by_row_then_target = np.lexsort((target_rank.to_numpy(), predicted[INPUT_ROW].to_numpy()))
        return predicted.iloc[by_row_then_target].reset_index(drop=True)

    def _predict_target(self, target: str, anchor_profiles: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
        model = self.models[target]
        raw = pd.DataFrame(model.predict(anchor_profiles), columns=model.output_columns_)
        # Op times cannot be negative (evaluation clips them too); an op this target's model lacks is 0.
        ops = raw.reindex(columns=self.output_op_columns, fill_value=0.0).to_numpy(dtype=float).clip(min=0.0)
        frame = pd.DataFrame(ops, columns=self.output_op_columns)
        frame.insert(0, INPUT_ROW, rows.astype("int64"))
        frame.insert(1, TARGET_INSTANCE, target)
        if self.predicts_latency:
            frame[BATCH_LATENCY] = raw[BATCH_LATENCY].to_numpy(dtype=float) if BATCH_LATENCY in raw else np.nan
        frame[PREDICTED_TOTAL] = ops.sum(axis=1)
        return frame


def unknown_columns(columns, op_columns: list[str]) -> list[str]:
    """Request columns that are neither a trained op nor a column the model accepts and ignores."""
    accepted = set(op_columns) | set(DESCRIPTIVE_COLUMNS) | {BATCH_LATENCY, TARGET_INSTANCE}
    return [column for column in columns if column not in accepted]


def model_op_columns(input_schema) -> list[str]:
    """The op columns a logged job model was trained on, read from its input signature."""
    reserved = set(DESCRIPTIVE_COLUMNS) | {BATCH_LATENCY, TARGET_INSTANCE}
    return [name for name in input_schema.input_names() if name not in reserved]


def checked_anchor_profiles(profiles: pd.DataFrame, op_columns: list[str], anchor: str) -> pd.DataFrame:
    """The request's op columns (+ anchor batch_latency) as floats; a bad value is a 400 naming it."""
    profiles = profiles.reset_index(drop=True)
    present = [column for column in op_columns if column in profiles.columns]
    if not present:
        raise _bad_request(
            f"no known op column in the request; this model was trained on {len(op_columns)} op columns "
            f"such as {', '.join(op_columns[:5])} (columns never seen in training are ignored)"
        )
    if len(profiles) == 0:
        raise _bad_request("the request holds no profile rows")
    if "instance_name" in profiles.columns:
        other = profiles["instance_name"].dropna().astype(str)
        other = other[other != anchor]
        if len(other):
            raise _bad_request(
                f"column 'instance_name' row {other.index[0]} is {other.iloc[0]!r}, but this model predicts "
                f"from profiles taken on {anchor!r}; use the model registered for that anchor"
            )
    try:
        times = profiles[present].to_numpy(dtype=float)  # one conversion for the whole block: the fast path
    except (TypeError, ValueError):
        times = None
    if times is None or not (np.isfinite(times) & (times >= 0)).all():
        for column in present:  # find the first bad cell, column by column, to name it
            _checked_column(profiles[column], column, allow_missing=False)
    checked = pd.DataFrame(times, columns=present)
    if BATCH_LATENCY in profiles.columns:
        checked[BATCH_LATENCY] = _checked_column(profiles[BATCH_LATENCY], BATCH_LATENCY, allow_missing=True).to_numpy()
    return checked


def _checked_column(values: pd.Series, column: str, allow_missing: bool) -> pd.Series:
    numbers, bad = parse_numbers(values, allow_missing)
    if bad:
        row, kind = bad
        what = MISSING_IN_REQUEST if kind == "missing" else BAD_NUMBER_WORDING[kind]
        rule = VALUE_RULES.get(column, VALUE_RULES["op"])
        raise _bad_request(f"column '{column}' row {row} value {shown_value(values.iloc[row])} {what}; {rule}")
    return numbers


def requested_targets(profiles: pd.DataFrame, targets: list[str]) -> pd.Series:
    """Per request row, the one target asked for, or NaN for all targets."""
    if TARGET_INSTANCE not in profiles.columns:
        return pd.Series(np.nan, index=range(len(profiles)), dtype=object)
    wanted = profiles[TARGET_INSTANCE].reset_index(drop=True)
    wanted = wanted.where(wanted.notna() & (wanted.astype(str) != ""), None).astype(object)
    unknown = wanted[wanted.notna() & ~wanted.isin(targets)]
    if len(unknown):
        raise _bad_request(
            f"column '{TARGET_INSTANCE}' row {unknown.index[0]} asks for {unknown.iloc[0]!r}, which this model does "
            f"not predict; known target instances: {', '.join(targets)} (leave it out for all)"
        )
    return wanted


def job_signature(op_columns: list[str], output_op_columns: list[str], predicts_latency: bool) -> ModelSignature:
    """Every input column optional, so a profile may list only the ops that ran; named outputs."""
    inputs = [ColSpec("double", column, required=False) for column in op_columns]
    inputs.append(ColSpec("double", BATCH_LATENCY, required=False))
    inputs.append(ColSpec("string", TARGET_INSTANCE, required=False))
    inputs += [ColSpec(kind, column, required=False) for column, kind in DESCRIPTIVE_COLUMNS.items()]
    outputs = [ColSpec("long", INPUT_ROW), ColSpec("string", TARGET_INSTANCE)]
    outputs += [ColSpec("double", column) for column in output_op_columns]
    outputs += [ColSpec("double", BATCH_LATENCY)] if predicts_latency else []
    outputs.append(ColSpec("double", PREDICTED_TOTAL))
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def log_job_model(anchor: str, target_results: dict, name: str = JOB_MODEL_NAME) -> None:
    """Log the job's fitted regressors (skops) as one pyfunc model on the active run.

    ``target_results`` maps each target instance to an object with ``.model`` (fitted regressor)
    and ``.input_example`` (anchor rows it was trained on), e.g. src.train.TargetResult.
    """
    import skops.io

    from src.tracking import SOURCE_DIR, model_requirements

    targets = list(target_results)
    models = {target: result.model for target, result in target_results.items()}
    op_columns = _union(list(op_part(result.input_example).columns) for result in target_results.values())
    output_op_columns = _union([c for c in model.output_columns_ if c != BATCH_LATENCY] for model in models.values())
    input_example = next(iter(target_results.values())).input_example.reset_index(drop=True)
    with tempfile.TemporaryDirectory() as folder:
        estimators = Path(folder) / "estimators.skops"
        skops.io.dump(models, estimators)
        predicts_latency = any(BATCH_LATENCY in model.output_columns_ for model in models.values())
        manifest = {
            "anchor": anchor,
            "targets": targets,
            "op_columns": op_columns,
            "output_op_columns": output_op_columns,
            "predicts_latency": predicts_latency,
            "skops_trusted_types": skops.io.get_untrusted_types(file=estimators),
        }
        manifest_path = Path(folder) / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        artifacts = {ESTIMATORS_ARTIFACT: str(estimators), MANIFEST_ARTIFACT: str(manifest_path)}
        logged = mlflow.pyfunc.log_model(
            name=name,
            python_model=ProfcastJobModel(),
            artifacts=artifacts,
            signature=job_signature(op_columns, output_op_columns, predicts_latency),
            input_example=input_example,
            code_paths=[str(SOURCE_DIR)],
            pip_requirements=model_requirements(),
            metadata={"anchor": anchor, "targets": targets},
        )
    mlflow.set_tags({JOB_MODEL_TAG: name, JOB_MODEL_URI_TAG: logged.model_uri})


def _union(column_lists) -> list[str]:
    seen: dict[str, None] = {}
    for columns in column_lists:
        seen.update(dict.fromkeys(columns))
    return list(seen)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ModelServer:
    """``mlflow models serve --env-manager local`` on a loopback port, for tests and the benchmark.

    A context manager: starts the server in its own process group, waits for /ping, and stops
    that group on exit. The server's output goes to ``log_path``.
    """

    def __init__(self, model_uri: str, log_path, env: dict | None = None, startup_seconds: float = 120.0):
        self.model_uri, self.log_path, self.env, self.startup_seconds = model_uri, Path(log_path), env, startup_seconds
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> "ModelServer":
        import subprocess
        import sys
        import urllib.request

        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.model_uri, "--env-manager", "local",
                   "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(self.env or {})}, start_new_session=True)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"mlflow models serve exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow models serve did not answer /ping within {self.startup_seconds:.0f} s; see {self.log_path}")

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server's process group (the CLI and the uvicorn worker it started) and wait for it."""
        import signal

        if self.process is None:
            return
        for sig, seconds in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            if self._group_gone_within(seconds):
                return

    def _group_gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader, or the group never looks empty
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False
