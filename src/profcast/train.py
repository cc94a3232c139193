"""Train and validate one anchor->target model per target instance, tracked in MLflow.

    profcast train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge

``train(cfg)`` builds what the config names and loads and pairs the data (``pipeline.job.prepare_job``),
and only then opens runs: bad input fails before anything is logged. Each target is evaluated
(``pipeline.job.evaluate_target``) and logged in a nested run; the job run gets one servable model.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
import numpy as np
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from profcast.catalogue import load_catalogue
from profcast.champions.register import champion_uri, register_job
from profcast.cli import exit_code
from profcast.config import CONF_DIR, config_errors_as_user_errors
from profcast.datasets.fingerprint import GENERATED
from profcast.jobmodel.measurement import measurement_record
from profcast.jobmodel.memory_fit import memory_record, peak_memory_carry
from profcast.jobmodel.storage import JOB_MODEL_NAME
from profcast.pipeline.job import TargetResult, evaluate_target, prepare_job
from profcast.progress import logging_beside_bars, track
from profcast.stops import RUNS_KILLED_NOTE
from profcast.tracking import provenance
from profcast.tracking.run_endings import run_job
from profcast.tracking.store import check_experiment_name, configure_tracking
from profcast.tracking.sweep import sweep_parent_run_id

log = logging.getLogger(__name__)

# Metrics averaged over targets onto the job run, so the MLflow UI compares jobs at a glance.
JOB_METRICS = (
    "mape_mean",
    "mape_median",
    "wape",
    "total_mape",
    "false_nonzero_rate",
    "batch_latency_mape",
    "peak_memory_error_pct",
    "interval_coverage",
)


def train(cfg: DictConfig) -> dict[str, dict]:
    """Run one job: a model per target, each in a nested MLflow run. Returns metrics per target."""
    check_experiment_name(cfg.mlflow_experiment)
    job = prepare_job(cfg)
    # MLflow loads slowly: import it only once the input is known to be good.
    from profcast.tracking.runs import (  # noqa: PLC0415  loads mlflow: the command's --help and refused input do not wait for it
        job_run,
        log_job_metrics,
        log_job_model,
        log_skipped_files,
        log_target_result,
        log_unmapped_ops,
        target_run,
    )
    from profcast.tracking.summary import log_job_summary  # noqa: PLC0415  loads matplotlib (through profcast.tracking.plots): the command's --help and refused input do not wait for it

    experiment_id = configure_tracking(cfg.tracking_uri, cfg.mlflow_experiment)
    names = job.names
    job_name = f"{cfg.anchor} {names['regressor']} {names['features']} {names['split']}"
    parent_run_id = sweep_parent_run_id(experiment_id)
    fitted: dict[str, TargetResult] = {}
    target_runs: dict[str, str] = {}
    data_tags = provenance.job_tags(job.data_description, job.data_kind, job.data_fingerprint, cfg.anchor, job.pairs)
    dataset = provenance.dataset_input(job.profiles, f"{names['data']}-{job.data_fingerprint[:8]}", job.data_source)
    log.info(
        "[%s] data: %s", job_name, provenance.trained_on(job.data_description, job.data_kind, job.data_fingerprint)
    )
    if job.data_kind == GENERATED:
        log.warning("[%s] %s (data=profet or data=file for real profiles)", job_name, provenance.GENERATED_WARNING)
    data_params = {
        "data_kind": job.data_kind,
        "data_fingerprint": job.data_fingerprint,
        "vocabulary": job.names["vocabulary"],
    }
    with (
        logging_beside_bars(),
        job_run(experiment_id, job_name, cfg, names, parent_run_id, data_tags, data_params, dataset) as job_run_id,
    ):
        if job.skipped_files is not None:
            log_skipped_files(job.skipped_files)
        if job.unmapped_ops is not None:
            log_unmapped_ops(job.unmapped_ops)
        for number, (target, paired) in enumerate(track(job.pairs.items(), f"{job_name}: targets"), start=1):
            log.info(
                "[%s] target %d/%d %s: %d pairs (%s pairing)",
                job_name,
                number,
                len(job.pairs),
                target,
                len(paired),
                paired.mode,
            )
            result = evaluate_target(paired, job)
            carry = peak_memory_carry(job.profiles, cfg.anchor, target)
            if carry is not None and carry["error_pct"] is not None:  # measured, where the data has both peaks
                result.metrics["peak_memory_error_pct"] = carry["error_pct"]
            with target_run(
                experiment_id, f"{cfg.anchor} -> {target} ({names['regressor']})", data_tags, dataset
            ) as run_id:
                log_target_result(result, cfg)
            target_runs[target], fitted[target] = run_id, result
            if result.unmeasured:
                log.warning(
                    "[%s] target %s: %s; leave-one-GPU-out step-time error %.1f%% (its interval is widened by it)",
                    job_name,
                    target,
                    result.unmeasured,
                    result.metrics["batch_latency_mape"],
                )
            else:
                log.info(
                    "[%s] target %s: wape %.1f%%, median column MAPE %.1f%%",
                    job_name,
                    target,
                    result.metrics["wape"],
                    result.metrics["mape_median"],
                )
        results = {target: result.metrics for target, result in fitted.items()}
        job_means = {
            f"mean_{name}": float(np.nanmean([metrics.get(name, np.nan) for metrics in results.values()]))
            for name in JOB_METRICS
            if any(name in metrics for metrics in results.values())
        }
        log_job_metrics(job_means)
        log_job_summary(results, job_name)  # targets.csv, targets.md, targets.png on the job run
        if cfg.log_model:
            metadata = {
                "data": job.data_description,
                "data_kind": job.data_kind,
                "data_fingerprint": job.data_fingerprint,
                "job_run_id": job_run_id,
                "regressor": names["regressor"],
                "measurement": measurement_record(job.profiles, cfg.anchor, list(fitted)),
            }
            log_job_model(
                cfg.anchor,
                fitted,
                target_runs,
                metadata,
                vocabulary=job.vocabulary.stored(),  # one servable model: every target
                native_op_columns=job.native_op_columns if job.vocabulary.mapping is not None else None,
                memory=memory_record(job.profiles, cfg.anchor, list(fitted), load_catalogue()),
                unmeasured={target: result.unmeasured for target, result in fitted.items() if result.unmeasured},
            )
    if cfg.log_model and cfg.registry.register_single and not parent_run_id:
        register_job(job_run_id, cfg.registry.alias, cfg.registry.metric)
    if cfg.log_model and not parent_run_id:  # a single job: say where its model is and how to use it
        served = champion_uri(cfg.anchor, cfg.registry.alias) if cfg.registry.register_single else None
        log.info(
            "[%s] job run %s; forecast with: profcast predict --model %s --profile PROFILE; %s",
            job_name,
            job_run_id,
            served or f"runs:/{job_run_id}/{JOB_MODEL_NAME}",
            f"serve it with: mlflow models serve -m {served} --env-manager local"
            if served
            else f"register it to serve (profcast registry --run-id {job_run_id}, or train with registry.register_single=true)",
        )
    if "mean_wape" in job_means:
        measured = sum("wape" in metrics for metrics in results.values())
        log.info("[%s] done: mean wape over %d measured targets %.1f%%", job_name, measured, job_means["mean_wape"])
    else:  # every target was forecast from figures only: no wape against measurements to report
        log.info("[%s] done: no measured target; see each target's batch_latency_mape", job_name)
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    """Command-line entry point: user errors become one line on stderr and exit code 2; Ctrl-C and
    SIGTERM end the open runs KILLED (exit 130/143). A sweep's parent run is ended by its callback."""

    try:
        code = run_job(train, cfg)
    except (
        HydraException,
        OmegaConfBaseException,
    ) as error:  # a config error inside the job is our bug, not the user's
        raise RuntimeError(f"bug: {type(error).__name__} while training") from error
    if code:
        sys.exit(code)


def command(_argv=None) -> int:
    """Compose the config from ``sys.argv`` and run ``main``; Hydra's composition errors (an unknown
    option or key, a wrong type) become one-line user errors, unless HYDRA_FULL_ERROR=1 asks for Hydra's own."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return 0
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises its errors to us instead of printing several lines
    with config_errors_as_user_errors():
        main()
    return 0


def run_command() -> None:
    """``python -m profcast.train`` (and the checkout's ``python -m src.train``): exit with the job's code."""

    # A parallel sweep's parent waits for its workers inside the launcher: a stop there is not inside
    # any job's run_job. Its jobs end their own runs; the sweep's callback ends the parent run at exit.
    sys.exit(exit_code(command, stop_note=RUNS_KILLED_NOTE))


if __name__ == "__main__":
    run_command()
