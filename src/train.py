"""Train and validate one anchor->target model per target instance, tracked in MLflow.

    python -m src.train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge

``train(cfg)`` builds what the config names (data source, feature selection, split, regressor),
loads and pairs everything, and only then opens runs: bad input fails before anything is logged.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import partial

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.base import clone

from src.cli import print_error
from src.config import checked_estimator, instantiate_option
from src.errors import ProfcastError
from src.pipeline.evaluation import cross_validate, score, vector_frames
from src.pipeline.pairing import PAIRING_MODES, PairedRuns, pair_runs, resolve_targets
from src.pipeline.parallel import resolve_n_jobs
from src.schema import op_part

log = logging.getLogger(__name__)

# Metrics averaged over targets onto the job run, so the MLflow UI compares jobs at a glance.
JOB_METRICS = ("mape_mean", "mape_median", "wape", "total_mape", "false_nonzero_rate", "batch_latency_mape")


@dataclass
class Job:
    """What one job config builds, checked before any run opens."""

    pairs: dict[str, PairedRuns]  # target instance -> paired anchor/target runs
    features: object  # has select(anchor_train_ops, target_train_ops) -> op columns
    split: object  # has folds(keys) -> [(train_rows, test_rows)]
    regressor: object  # an unfitted profile regressor; each fit uses a clone
    n_jobs: int = 1  # processes for a target's fits (src.pipeline.parallel)


@dataclass
class TargetResult:
    """Everything learned and measured for one target instance."""

    params: dict
    metrics: dict
    column_mape: pd.Series
    predictions: pd.DataFrame
    truth_ops: pd.DataFrame
    predicted_ops: pd.DataFrame
    model: object
    input_example: pd.DataFrame


def prepare_job(cfg: DictConfig) -> Job:
    """Build every option and load and pair the data, so bad input fails before any run is opened."""
    if cfg.pairing not in PAIRING_MODES:
        raise ProfcastError(f"unknown pairing '{cfg.pairing}'; accepted: {', '.join(PAIRING_MODES)}")
    data = instantiate_option("data", cfg.data)
    features = instantiate_option("features", cfg.features)
    split = instantiate_option("split", cfg.split)
    regressor = checked_estimator("regressor", cfg.regressor, instantiate_option("regressor", cfg.regressor))
    profiles = data.load()
    targets = resolve_targets(profiles, cfg.anchor, cfg.target)
    pairs = {target: pair_runs(profiles, cfg.anchor, target, cfg.pairing) for target in targets}
    for paired in pairs.values():
        split.folds(paired.keys)  # an unknown holdout model or a single group fails here
    return Job(pairs=pairs, features=features, split=split, regressor=regressor, n_jobs=resolve_n_jobs(cfg.get("n_jobs", "auto")))


def evaluate_target(paired: PairedRuns, job: Job, cfg: DictConfig) -> TargetResult:
    """Cross-validate on held-out groups, then refit on every paired row for the logged model."""
    folds = job.split.folds(paired.keys)
    make_regressor = partial(clone, job.regressor)  # a partial, not a lambda: worker processes get only the regressor
    held_out = cross_validate(paired, folds, make_regressor, job.features.select, n_jobs=job.n_jobs, refit=True)
    metrics, column_mape = score(held_out, paired.target_profile)
    model, columns = held_out.refit
    anchor_frame, _ = vector_frames(paired, columns)
    predictions = pd.concat(
        [
            paired.keys.iloc[held_out.truth.index].reset_index(drop=True),
            pd.Series(held_out.fold, name="fold"),
            held_out.truth.add_prefix("true.").reset_index(drop=True),
            held_out.predicted.add_prefix("pred.").reset_index(drop=True),
        ],
        axis=1,
    )
    params = {
        "anchor": paired.anchor,
        "target": paired.target,
        "regressor": cfg.regressor.name,
        "features": cfg.features.name,
        "split": cfg.split.name,
        "pairing": paired.mode,
        "n_pairs": len(paired),
        "n_anchor_runs": paired.n_anchor_runs,
        "n_folds": len(folds),
        "n_columns": len(columns),
    }
    return TargetResult(
        params=params,
        metrics=metrics,
        column_mape=column_mape,
        predictions=predictions,
        truth_ops=op_part(held_out.truth),
        predicted_ops=op_part(held_out.predicted),
        model=model,
        input_example=anchor_frame.head(3),
    )


def train(cfg: DictConfig) -> dict[str, dict]:
    """Run one job: a model per target, each in a nested MLflow run. Returns metrics per target."""
    job = prepare_job(cfg)
    # MLflow loads slowly: import it only once the input is known to be good.
    import mlflow

    from src.tracking.runs import flat_config, log_job_model, log_target_result
    from src.tracking.store import configure_tracking
    from src.tracking.sweep import sweep_parent_run_id

    experiment_id = configure_tracking(cfg.tracking_uri, cfg.mlflow_experiment)
    job_name = f"{cfg.anchor} {cfg.regressor.name} {cfg.features.name} {cfg.split.name}"
    parent_run_id = sweep_parent_run_id()
    fitted: dict[str, TargetResult] = {}
    target_runs: dict[str, str] = {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=job_name, parent_run_id=parent_run_id, nested=bool(parent_run_id)):
        mlflow.log_params({
            **flat_config(cfg, skip=("anchor", "target", "pairing")),
            "anchor": cfg.anchor, "target": cfg.target, "regressor": cfg.regressor.name,
            "features": cfg.features.name, "split": cfg.split.name, "pairing": cfg.pairing,
        })
        for number, (target, paired) in enumerate(job.pairs.items(), start=1):
            log.info("[%s] target %d/%d %s: %d pairs (%s pairing)", job_name, number, len(job.pairs), target, len(paired), paired.mode)
            result = evaluate_target(paired, job, cfg)
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.anchor} -> {target}", nested=True) as target_run:
                log_target_result(result, cfg)
            target_runs[target] = target_run.info.run_id
            fitted[target] = result
            log.info("[%s] target %s: wape %.1f%%, median column MAPE %.1f%%", job_name, target, result.metrics["wape"], result.metrics["mape_median"])
        results = {target: result.metrics for target, result in fitted.items()}
        job_means = {
            f"mean_{name}": float(np.nanmean([metrics.get(name, np.nan) for metrics in results.values()]))
            for name in JOB_METRICS
            if any(name in metrics for metrics in results.values())
        }
        mlflow.log_metrics(job_means)
        if cfg.log_model:
            log_job_model(cfg.anchor, fitted, target_runs)  # one servable model: every target of this anchor
    log.info("[%s] done: mean wape over %d targets %.1f%%", job_name, len(results), job_means.get("mean_wape", float("nan")))
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Command-line entry point: user errors become one line on stderr and exit code 2."""
    try:
        train(cfg)
    except ProfcastError as error:
        from src.tracking.sweep import fail_sweep_parent_run

        print_error(error)
        fail_sweep_parent_run()
        sys.exit(2)


if __name__ == "__main__":
    main()
