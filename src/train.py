"""Train and validate one anchor->target model per target instance, tracked in MLflow.

    python -m src.train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import partial

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from src.data import load_profiles
from src.errors import ProfcastError
from src.evaluation import cross_validate, fit_regressor, score, vector_frames
from src.features import select_columns
from src.pairing import PAIRING_MODES, PairedRuns, pair_runs, resolve_targets
from src.regressors import build_regressor, op_part
from src.splits import validation_folds
from src.sweep import PARENT_RUN_ENV, fail_sweep_parent_run
from src.sweep_runs import job_parent_run

log = logging.getLogger("profcast")

# Metrics averaged over targets onto the job run, so the MLflow UI compares jobs at a glance.
JOB_METRICS = ("mape_mean", "mape_median", "wape", "total_mape", "false_nonzero_rate", "batch_latency_mape")


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


def evaluate_target(paired: PairedRuns, cfg: DictConfig) -> TargetResult:
    """Cross-validate on held-out groups, then refit on every paired row for the logged model."""
    folds = validation_folds(paired.keys, cfg.split.scheme, cfg.split.get("holdout"))
    make_regressor = partial(build_regressor, cfg.regressor)
    select = partial(select_columns, method=cfg.features.method, k=cfg.features.get("k"))
    held_out = cross_validate(paired, folds, make_regressor, select)
    metrics, column_mape = score(held_out, paired.target_profile)
    model, columns = fit_regressor(paired, np.arange(len(paired)), make_regressor, select)
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


def prepare_pairs(cfg: DictConfig) -> dict[str, PairedRuns]:
    """Load and pair everything up front, so bad input fails before any run is opened."""
    if cfg.pairing not in PAIRING_MODES:
        raise ProfcastError(f"unknown pairing '{cfg.pairing}'; accepted: {', '.join(PAIRING_MODES)}")
    profiles = load_profiles(cfg.data)
    targets = resolve_targets(profiles, cfg.anchor, cfg.target)
    build_regressor(cfg.regressor)  # a bad regressor option fails here, not mid-sweep
    return {target: pair_runs(profiles, cfg.anchor, target, cfg.pairing) for target in targets}


def train(cfg: DictConfig) -> dict[str, dict]:
    """Run one job: a model per target, each in a nested MLflow run. Returns metrics per target."""
    pairs = prepare_pairs(cfg)
    # MLflow loads slowly: import it only once the input is known to be good.
    import mlflow

    from src.tracking import configure_tracking, flat_config, log_target_result

    experiment_id = configure_tracking(cfg.tracking_uri, cfg.experiment)
    job_name = f"{cfg.anchor} {cfg.regressor.name} {cfg.features.name} {cfg.split.name}"
    parent_run_id = job_parent_run(experiment_id, os.environ.get(PARENT_RUN_ENV))  # works in any worker process
    fitted: dict[str, TargetResult] = {}
    with mlflow.start_run(experiment_id=experiment_id, run_name=job_name, parent_run_id=parent_run_id, nested=bool(parent_run_id)):
        mlflow.log_params(flat_config(cfg, skip=("anchor", "target", "pairing")))
        mlflow.log_params({
            "anchor": cfg.anchor, "target": cfg.target, "regressor": cfg.regressor.name,
            "features": cfg.features.name, "split": cfg.split.name, "pairing": cfg.pairing,
        })
        for number, (target, paired) in enumerate(pairs.items(), start=1):
            log.info("[%s] target %d/%d %s: %d pairs (%s pairing)", job_name, number, len(pairs), target, len(paired), paired.mode)
            result = evaluate_target(paired, cfg)
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{cfg.anchor} -> {target}", nested=True):
                log_target_result(result, cfg, log_model=cfg.log_model)
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
            from src.serving import log_job_model

            log_job_model(cfg.anchor, fitted)  # one servable model: every target of this anchor
    log.info("[%s] done: mean wape over %d targets %.1f%%", job_name, len(results), job_means.get("mean_wape", float("nan")))
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Command-line entry point: user errors become one line on stderr and exit code 2."""
    try:
        train(cfg)
    except ProfcastError as error:
        print(f"profcast: error: {error}", file=sys.stderr)
        fail_sweep_parent_run()
        sys.exit(2)


if __name__ == "__main__":
    main()
