"""Log a job to MLflow: its params and metrics, each target's artifacts, and one servable model."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from omegaconf import DictConfig, OmegaConf

import profcast
from profcast.csv_cells import to_safe_csv
from profcast.jobmodel.answer_format import OUTPUT_PARAM, OUTPUT_SHAPES
from profcast.jobmodel.memory_fit import DEVICE_MEMORY, FITS, MEMORY_MARGIN
from profcast.jobmodel.requests import (
    DESCRIPTIVE_COLUMNS,
    EPOCH_LATENCY,
    INPUT_ROW,
    PREDICTED_TOTAL,
    SIZE_COLUMNS,
    TARGET_INSTANCE,
    TARGET_MEASURED,
    TRAINED_ON,
)
from profcast.jobmodel.servable import assemble_job_model
from profcast.jobmodel.storage import JOB_MODEL_NAME, JOB_MODEL_TAG, JOB_MODEL_URI_TAG, LOADER_MODULE
from profcast.pipeline.unmeasured_target import MEASURED_TAG, UNMEASURED_TAG
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY
from profcast.tracking import plots
from profcast.tracking.metric_keys import metric_keys
from profcast.tracking.provenance import RUN_KIND_TAG, trained_on


def flat_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The resolved config as dotted keys, for logging as MLflow params (never Hydra's own ``hydra`` node)."""
    job_keys = {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key not in (*skip, "hydra")
    }  # each resolved in place: interpolations see the whole config
    flat = pd.json_normalize(job_keys, sep=".").iloc[0].to_dict()
    return {key: str(value) for key, value in flat.items() if key.split(".")[0] not in skip}


@contextmanager
def job_run(
    experiment_id: str,
    job_name: str,
    cfg: DictConfig,
    names: dict[str, str],
    parent_run_id: str | None = None,
    tags: dict | None = None,
    extra_params: dict | None = None,
    dataset=None,
):
    """The job's run (nested under the sweep's parent run when there is one), with its params (``names``:
    each option group's name), tags and dataset input logged; yields its run id."""

    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=job_name,
        parent_run_id=parent_run_id,
        nested=bool(parent_run_id),
        tags={**(tags or {}), RUN_KIND_TAG: "job"},
    ) as run:
        mlflow.log_params(
            {
                **flat_config(cfg, skip=("anchor", "target")),
                "anchor": cfg.anchor,
                "target": cfg.target,
                "regressor": names["regressor"],
                "features": names["features"],
                "split": names["split"],
                "pairing": names["pairing"],
                **(extra_params or {}),
            }
        )
        if dataset is not None:
            log_dataset_input(dataset)
        yield run.info.run_id


@contextmanager
def target_run(experiment_id: str, run_name: str, tags: dict | None = None, dataset=None):
    """One target's run, nested in the active job run, tagged and with the dataset input; yields its run id."""

    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=True, tags={**(tags or {}), RUN_KIND_TAG: "target"}
    ) as run:
        if dataset is not None:
            log_dataset_input(dataset)
        yield run.info.run_id


# Jobs running side by side may register the same dataset at once: MLflow looks it up, finds it
# missing, and both insert it; the second insert breaks the store's unique key and rolls back.
DATASET_RACE_WORDS = ("unique constraint", "duplicate key", "integrityerror")
DATASET_RETRIES = 3


def log_dataset_input(dataset) -> None:
    """``mlflow.log_input(dataset)`` on the active run, retried when a parallel job registered the same dataset first."""

    for attempt in range(DATASET_RETRIES):
        try:
            mlflow.log_input(dataset, context="training")
            return
        except MlflowException as error:
            if attempt == DATASET_RETRIES - 1 or not any(word in str(error).lower() for word in DATASET_RACE_WORDS):
                raise
            time.sleep(0.2 * (attempt + 1))  # the other job's insert is committed by then: the retry reuses its row


def log_job_metrics(metrics: dict[str, float]) -> None:
    """The job run's metrics (means over targets)."""
    mlflow.log_metrics(metrics)


def log_target_result(result, cfg: DictConfig) -> None:
    """Log one target's params, metrics, error table, predictions and figures on the active run.

    Params and metrics go in one batch call; the figures are skipped when ``cfg.log_plots`` is false.
    """
    params = {**flat_config(cfg, skip=("anchor", "target", "pairing")), **{k: str(v) for k, v in result.params.items()}}
    metrics = {name: value for name, value in result.metrics.items() if pd.notna(value)}
    keys = metric_keys(result.column_mape.index, prefix="mape.")  # op names may hold characters MLflow refuses
    metrics.update({keys[column]: value for column, value in result.column_mape.items() if pd.notna(value)})
    run_id = mlflow.active_run().info.run_id
    mlflow.MlflowClient().log_batch(
        run_id,
        metrics=[Metric(name, float(value), int(time.time() * 1000), 0) for name, value in metrics.items()],
        params=[Param(name, value) for name, value in params.items()],
    )
    _log_csv(result.column_mape.rename("mape").rename_axis("column").reset_index(), "column_errors.csv")
    renamed = {column: key for column, key in keys.items() if key != f"mape.{column}"}
    if renamed:  # which metric holds which op, for the names that had to change
        _log_csv(pd.DataFrame({"column": list(renamed), "metric_key": list(renamed.values())}), "metric_keys.csv")
    _log_csv(result.predictions, "heldout_predictions.csv")
    unmeasured = getattr(result, "unmeasured", None)
    if unmeasured:  # its held-out "truth" is the per-call model's forecast: no figure may pass it off as measured
        mlflow.set_tags({MEASURED_TAG: "false", "mlflow.note.content": unmeasured})
        return
    if cfg.log_plots:
        title = f"{result.params['anchor']} -> {result.params['target']} ({result.params['regressor']})"
        plots.log_target_figures(result.truth_ops, result.predicted_ops, result.column_mape, title)


# What the served model imports (profcast.serve.loader and below), pinned as installed here. A test
# loads a logged model in a Python that has only these and the model's own copy of profcast.
SERVING_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy", "threadpoolctl", "pyyaml")


def model_requirements() -> list[str]:
    """Pinned packages a logged model needs, read from this environment.

    Passing them spares MLflow's own inference, which runs a subprocess and takes seconds per model.
    """
    return [f"{package}=={version(package)}" for package in SERVING_PACKAGES]


@contextmanager
def package_code():
    """A folder holding a copy of the profcast package (no configs, no caches), for ``code_paths``: the
    logged model carries the code that loads it, so it serves where profcast is not installed."""

    with tempfile.TemporaryDirectory() as staging:
        copy = Path(staging) / "profcast"
        shutil.copytree(
            Path(profcast.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__", "conf", "*.pyc")
        )
        yield str(copy)


def log_job_model(
    anchor: str,
    target_results: dict,
    target_runs: dict | None = None,
    metadata: dict | None = None,
    vocabulary: dict | None = None,
    native_op_columns: list | None = None,
    memory: dict | None = None,
    unmeasured: dict | None = None,
) -> str:
    """Log every target's fitted regressor as one servable model on the active run; return its URI.

    ``target_results`` maps each target instance to an object with ``.model`` (fitted regressor)
    and ``.input_example`` (anchor rows it was trained on), e.g. profcast.pipeline.job.TargetResult; the
    job-model layer assembles them (jobmodel.servable), each regressor serialised once (skops); MLflow
    loads the model through profcast.serve.loader.
    Each run of ``target_runs`` ({target: run id}) is tagged with the model that holds its regressor.
    ``unmeasured`` ({target: note}) names the targets forecast from figures only: the served answer
    marks them (``target_measured``) and the job run is tagged.
    ``metadata`` (what it was trained on: data, data_kind, data_fingerprint, ...) joins the model's
    metadata, and its served output names the data in a ``trained_on`` column.
    """

    metadata = dict(metadata or {})
    data_line = (
        trained_on(metadata["data"], metadata["data_kind"], metadata["data_fingerprint"])
        if "data" in metadata
        else None
    )
    with tempfile.TemporaryDirectory() as folder, package_code() as code:
        servable = assemble_job_model(
            folder, anchor, target_results, data_line, vocabulary, native_op_columns, memory, unmeasured
        )
        manifest = servable.manifest
        logged = mlflow.pyfunc.log_model(
            name=JOB_MODEL_NAME,
            loader_module=LOADER_MODULE,
            data_path=folder,
            code_paths=[code],
            signature=job_signature(
                servable.accepted_columns,
                manifest["output_op_columns"],
                manifest["predicts_latency"],
                data_line is not None,
                manifest.get("interval_quantity"),
                memory is not None,
                bool(unmeasured),
            ),
            input_example=servable.input_example,
            pip_requirements=model_requirements(),
            metadata={
                **metadata,
                "anchor": anchor,
                "targets": servable.targets,
                "vocabulary": (vocabulary or {}).get("name", "native"),
            },
        )
    mlflow.set_tags({JOB_MODEL_TAG: JOB_MODEL_NAME, JOB_MODEL_URI_TAG: logged.model_uri})
    if unmeasured:
        mlflow.set_tag(UNMEASURED_TAG, ",".join(sorted(unmeasured)))
    client = mlflow.MlflowClient()
    for run_id in (target_runs or {}).values():
        client.set_tag(run_id, JOB_MODEL_URI_TAG, logged.model_uri)
    return logged.model_uri


SKIPPED_FILES_TAG = "profcast.skipped_files"  # the files a folder read left out, one per line
MAX_TAG_CHARS = 5000  # MLflow stores tag values up to 8000 characters


def log_skipped_files(skipped: list) -> None:
    """Count the files a folder read skipped (param ``n_skipped_files``) and name them in a tag."""
    mlflow.log_param("n_skipped_files", len(skipped))
    if skipped:
        listed = "\n".join(f"{path}: {why}" for path, why in skipped)
        if len(listed) > MAX_TAG_CHARS:
            listed = listed[:MAX_TAG_CHARS].rsplit("\n", 1)[0] + f"\n... ({len(skipped)} files in all; see the job log)"
        mlflow.set_tag(SKIPPED_FILES_TAG, listed)


def log_unmapped_ops(unmapped: pd.DataFrame) -> None:
    """The op columns the canonical vocabulary put in 'other': ``unmapped_ops.csv`` (name, share of time)
    and params ``n_unmapped_ops`` and ``unmapped_ops_share``."""
    mlflow.log_params({"n_unmapped_ops": len(unmapped), "unmapped_ops_share": f"{float(unmapped['share'].sum()):.6f}"})
    _log_csv(unmapped, "unmapped_ops.csv")


def _log_csv(frame: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_text(to_safe_csv(frame, index=False), artifact_file)


def job_signature(
    op_columns: list[str],
    output_op_columns: list[str],
    predicts_latency: bool,
    names_data: bool = False,
    interval_quantity: str | None = None,
    answers_memory: bool = False,
    marks_unmeasured: bool = False,
) -> ModelSignature:
    """Every input column optional, so a profile may list only the ops that ran; named outputs.

    A model with an interval (``interval_quantity``) also takes the what-if and epoch request columns
    and answers ``<quantity>_low``/``_high`` and the epoch columns (docs/whatif.md).
    """
    inputs = [ColSpec("double", column, required=False) for column in op_columns]
    inputs.append(ColSpec("double", BATCH_LATENCY, required=False))
    inputs.append(ColSpec("double", PEAK_MEMORY, required=False))  # the anchor's, for the fits column
    inputs.append(ColSpec("string", TARGET_INSTANCE, required=False))
    inputs += [ColSpec(kind, column, required=False) for column, kind in DESCRIPTIVE_COLUMNS.items()]
    outputs = [ColSpec("long", INPUT_ROW), ColSpec("string", TARGET_INSTANCE)]
    outputs += [ColSpec("double", column) for column in output_op_columns]
    outputs += [ColSpec("double", BATCH_LATENCY)] if predicts_latency else []
    outputs.append(ColSpec("double", PREDICTED_TOTAL))
    outputs += [ColSpec("string", TRAINED_ON)] if names_data else []  # which data the model stands on
    if interval_quantity:
        inputs += [ColSpec("double", column, required=False) for column in SIZE_COLUMNS]
        outputs += [ColSpec("double", f"{interval_quantity}_{end}") for end in ("low", "high")]
        epoch = [EPOCH_LATENCY] + (
            [f"{EPOCH_LATENCY}_low", f"{EPOCH_LATENCY}_high"] if interval_quantity == BATCH_LATENCY else []
        )
        outputs += [ColSpec("double", column) for column in epoch] if predicts_latency else []
    if answers_memory:  # profcast.jobmodel.memory_fit: the peak on each target and whether it fits
        outputs += [ColSpec("double", column) for column in (PEAK_MEMORY, DEVICE_MEMORY, MEMORY_MARGIN)]
        outputs.append(ColSpec("boolean", FITS))
    if marks_unmeasured:  # False for a target forecast from its figures only (no measurement of it)
        outputs.append(ColSpec("boolean", TARGET_MEASURED))
    # The answer's shape: records (default), columns or totals (profcast.jobmodel.answer_format).
    params = ParamSchema([ParamSpec(OUTPUT_PARAM, "string", OUTPUT_SHAPES[0])])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)
