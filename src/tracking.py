"""Where MLflow runs live and how a job's results are logged; the one place that knows MLflow."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
import skops.io
from mlflow.models import infer_signature
from omegaconf import DictConfig, OmegaConf

from src import plots

SOURCE_DIR = Path(__file__).resolve().parent


def tracking_uri(configured: str | None) -> str:
    """MLFLOW_TRACKING_URI when set, else the configured URI (a SQLite file inside mlruns/)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlruns/mlflow.db"


def configure_tracking(configured_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store, create it and the experiment if needed; return the experiment id.

    A SQLite store keeps its artifacts in an `artifacts/` folder beside the database.
    """
    uri = tracking_uri(configured_uri)
    artifact_location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (database.parent / "artifacts").resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    launched_run = os.environ.get("MLFLOW_RUN_ID")
    if launched_run:  # under `mlflow run`, stay in the experiment of the run it opened for us
        return mlflow.get_run(launched_run).info.experiment_id
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(experiment, artifact_location=artifact_location)


def flat_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The resolved config as dotted keys, for logging as MLflow params."""
    flat = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0].to_dict()
    return {key: str(value) for key, value in flat.items() if key.split(".")[0] not in skip}


def log_target_result(result, cfg: DictConfig, log_model: bool) -> None:
    """Log one target's params, metrics, error table, predictions, figures and model on the active run."""
    mlflow.log_params(flat_config(cfg, skip=("anchor", "target", "pairing", "hydra")))
    mlflow.log_params(result.params)
    mlflow.log_metrics({name: value for name, value in result.metrics.items() if pd.notna(value)})
    mlflow.log_metrics({f"mape.{column}": value for column, value in result.column_mape.items() if pd.notna(value)})
    _log_csv(result.column_mape.rename("mape").rename_axis("column").reset_index(), "column_errors.csv")
    _log_csv(result.predictions, "heldout_predictions.csv")
    title = f"{result.params['anchor']} -> {result.params['target']} ({result.params['regressor']})"
    for figure, name in (
        (plots.predicted_vs_true_figure(result.truth_ops, result.predicted_ops, title), "pred_vs_true.png"),
        (plots.column_error_figure(result.column_mape, title), "column_errors.png"),
    ):
        mlflow.log_figure(figure, name)
        plots.close(figure)
    if log_model:
        log_fitted_model(result.model, result.input_example)


def model_requirements() -> list[str]:
    """Pinned packages a logged model needs, read from this environment.

    Passing them spares MLflow's own inference, which runs a subprocess and takes seconds per model.
    """
    packages = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "hydra-core", "omegaconf")
    return [f"{package}=={version(package)}" for package in packages]


def log_fitted_model(model, input_example: pd.DataFrame, name: str = "model") -> None:
    """The fitted regressor in skops format, with signature and input example, servable as pyfunc."""
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    output_example = pd.DataFrame(model.predict(input_example), columns=model.output_columns_)
    mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=untrusted,
        signature=infer_signature(input_example, output_example),
        input_example=input_example,
        code_paths=[str(SOURCE_DIR)],
        pip_requirements=model_requirements(),
    )


def _log_csv(frame: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_text(frame.to_csv(index=False), artifact_file)
