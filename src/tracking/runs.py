"""Log a job to MLflow: its params and metrics, each target's artifacts, and one servable model."""

from __future__ import annotations

import tempfile
import time
from importlib.metadata import version

import mlflow
from mlflow.entities import Metric, Param
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from src.schema import op_part, union_columns
from src.tracking import plots


def flat_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The resolved config as dotted keys, for logging as MLflow params."""
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0].to_dict()
    return {key: str(value) for key, value in flat.items() if key.split(".")[0] not in skip}


def log_target_result(result, cfg: DictConfig) -> None:
    """Log one target's params, metrics, error table, predictions and figures on the active run.

    Params and metrics go in one batch call; the figures are skipped when ``cfg.log_plots`` is false.
    """
    params = {**flat_config(cfg, skip=("anchor", "target", "pairing", "hydra")), **{k: str(v) for k, v in result.params.items()}}
    metrics = {name: value for name, value in result.metrics.items() if pd.notna(value)}
    metrics.update({f"mape.{column}": value for column, value in result.column_mape.items() if pd.notna(value)})
    run_id = mlflow.active_run().info.run_id
    mlflow.MlflowClient().log_batch(
        run_id,
        metrics=[Metric(name, float(value), int(time.time() * 1000), 0) for name, value in metrics.items()],
        params=[Param(name, value) for name, value in params.items()],
    )
    _log_csv(result.column_mape.rename("mape").rename_axis("column").reset_index(), "column_errors.csv")
    _log_csv(result.predictions, "heldout_predictions.csv")
    if cfg.get("log_plots", True):
        title = f"{result.params['anchor']} -> {result.params['target']} ({result.params['regressor']})"
        plots.log_target_figures(result.truth_ops, result.predicted_ops, result.column_mape, title)


def model_requirements() -> list[str]:
    """Pinned packages a logged model needs, read from this environment.

    Passing them spares MLflow's own inference, which runs a subprocess and takes seconds per model.
    """
    packages = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "hydra-core", "omegaconf")
    return [f"{package}=={version(package)}" for package in packages]


def log_job_model(anchor: str, target_results: dict, target_runs: dict | None = None) -> str:
    """Log every target's fitted regressor as one servable model on the active run; return its URI.

    ``target_results`` maps each target instance to an object with ``.model`` (fitted regressor)
    and ``.input_example`` (anchor rows it was trained on), e.g. src.train.TargetResult. Each
    regressor is serialised once (skops); MLflow loads the model through src.serve.job_model.
    Each run of ``target_runs`` ({target: run id}) is tagged with the model that holds its regressor.
    """
    from src.serve.job_model import JOB_MODEL_NAME, JOB_MODEL_TAG, JOB_MODEL_URI_TAG, save_job_model
    from src.serve.requests import job_signature

    models = {target: result.model for target, result in target_results.items()}
    op_columns = union_columns(list(op_part(result.input_example).columns) for result in target_results.values())
    input_example = next(iter(target_results.values())).input_example.reset_index(drop=True)
    with tempfile.TemporaryDirectory() as folder:
        manifest = save_job_model(folder, anchor, models, op_columns)
        logged = mlflow.pyfunc.log_model(
            name=JOB_MODEL_NAME,
            loader_module="src.serve.job_model",
            data_path=folder,
            signature=job_signature(op_columns, manifest["output_op_columns"], manifest["predicts_latency"]),
            input_example=input_example,
            pip_requirements=model_requirements(),
            metadata={"anchor": anchor, "targets": list(models)},
        )
    mlflow.set_tags({JOB_MODEL_TAG: JOB_MODEL_NAME, JOB_MODEL_URI_TAG: logged.model_uri})
    client = mlflow.MlflowClient()
    for run_id in (target_runs or {}).values():
        client.set_tag(run_id, JOB_MODEL_URI_TAG, logged.model_uri)
    return logged.model_uri


def _log_csv(frame: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_text(frame.to_csv(index=False), artifact_file)
