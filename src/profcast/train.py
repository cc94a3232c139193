"""Train and validate one anchor->target model per target instance, tracked in MLflow.

    python -m profcast.train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge

``train(cfg)`` builds what the config names (data source, feature selection, split, regressor, pairing, what-if),
loads and pairs everything, and only then opens runs: bad input fails before anything is logged.
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
from sklearn.base import clone

from profcast.config import (
    CONF_DIR,
    checked_estimator,
    config_errors_as_user_errors,
    instantiate_option,
    option_choices,
    option_name,
)
from profcast.errors import ProfcastError
from profcast.jobmodel.measurement import measurement_record
from profcast.jobmodel.memory_fit import memory_record, peak_memory_carry
from profcast.pipeline.evaluation import cross_validate, score, vector_frames
from profcast.pipeline.pairing import PairedRuns, resolve_targets
from profcast.pipeline.parallel import resolve_n_jobs
from profcast.schema import op_columns, op_part
from profcast.tracking.store import check_experiment_name
from profcast.vocabulary import unmapped_note

log = logging.getLogger(__name__)

# The option groups a job builds (conf/<group>/), each named in the runs by the option picked.
OPTION_GROUPS = ("data", "features", "split", "regressor", "pairing", "whatif", "vocabulary")
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


@dataclass
class Job:
    """What one job config builds, checked before any run opens."""

    pairs: dict[str, PairedRuns]  # target instance -> paired anchor/target runs
    features: object  # has select(anchor_train_ops, target_train_ops) -> op columns
    split: object  # has folds(keys) -> [(train_rows, test_rows)]
    regressor: object  # an unfitted profile regressor; each fit uses a clone
    names: dict[str, str]  # what runs call each option: {data, features, split, regressor, pairing, whatif: name}
    whatif: object  # the whatif option: FitSizeWhatIf or NoSizeWhatIf (profcast.pipeline.calibration)
    profiles: pd.DataFrame | None = None  # the loaded table (logged as the runs' dataset input)
    data_description: str = ""  # the source's describe(): which data, e.g. "PROFET real measurements"
    data_kind: str = ""  # generated | real (profcast.tracking.provenance)
    data_fingerprint: str = ""  # hash of the loaded table: jobs are comparable only with equal ones
    data_source: str = ""  # where the table came from (a path, or the description)
    skipped_files: list | None = (
        None  # (file, why) a folder read left out (data.on_bad_file=skip); None: not a folder source
    )
    n_jobs: int = 1  # processes for a target's fits (profcast.pipeline.parallel)
    vocabulary: object = None  # profcast.vocabulary.Vocabulary: the op names the models read (native or canonical)
    unmapped_ops: pd.DataFrame | None = None  # op columns the canonical vocabulary put in 'other' (None: native)
    native_op_columns: list | None = (
        None  # the loaded table's op columns before mapping (a canonical model also accepts them)
    )
    unmeasured: dict | None = None  # target -> UnmeasuredTarget: forecast from its figures (target_gpu)


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
    extras: dict | None = None  # interval and size what-if (profcast.pipeline.calibration.target_extras)
    trained_range: dict | None = None  # batch and input sizes of the training rows (profcast.jobmodel.trained_range)
    unmeasured: str | None = None  # for a target nobody measured: the line saying so (pipeline/unmeasured_target)


def prepare_job(cfg: DictConfig) -> Job:
    """Build every option and load and pair the data, so bad input fails before any run is opened."""
    check_experiment_name(cfg.mlflow_experiment)
    choices = option_choices(cfg)  # the option picked in each group: what errors and runs call it
    built = {group: instantiate_option(group, cfg[group], choices[group]) for group in OPTION_GROUPS}
    data, features, split, pairing, whatif = (
        built[group] for group in ("data", "features", "split", "pairing", "whatif")
    )
    regressor = checked_estimator("regressor", choices["regressor"], built["regressor"])
    names = {group: option_name(choices[group], option) for group, option in built.items()}
    vocabulary = built["vocabulary"]
    profiles = data.load()
    unmeasured = {}
    if cfg.target_gpu:  # its rows are the per-call model's forecasts, added before any name mapping
        from profcast.pipeline.unmeasured_target import neusight_folder_of, target_rows

        profiles, added = target_rows(
            profiles, cfg.anchor, cfg.target_gpu, neusight_folder_of(data), cfg.per_call.max_iter
        )
        unmeasured[added.name] = added
    native_op_columns = op_columns(profiles.columns)
    profiles, unmapped_ops = vocabulary.apply(profiles)  # before pairing: every model reads the same names
    if unmapped_ops is not None and not unmapped_ops.empty:
        log.warning("%s", unmapped_note(unmapped_ops))
    targets = resolve_targets(profiles, cfg.anchor, cfg.target)
    left_out = sorted(set(unmeasured) - set(targets))
    if left_out:
        raise ProfcastError(
            f"target_gpu={cfg.target_gpu} adds {left_out[0]}, but target={cfg.target} leaves it out; "
            f"use target={left_out[0]} or target=all"
        )
    pairs = {target: pairing(profiles, cfg.anchor, target) for target in targets}
    for paired in pairs.values():
        split.folds(paired.keys)  # an unknown holdout model or a single group fails here
    skipped = getattr(data, "skipped", None)
    if skipped:
        log.warning(
            "%d file(s) of %s skipped (data.on_bad_file=skip): %s",
            len(skipped),
            data.describe(),
            "; ".join(f"{path} ({why})" for path, why in skipped),
        )
    from profcast.tracking.provenance import data_fingerprint, data_kind

    return Job(
        pairs=pairs,
        features=features,
        split=split,
        regressor=regressor,
        names=names,
        whatif=whatif,
        profiles=profiles,
        data_description=data.describe(),
        data_kind=data_kind(cfg.data),
        data_fingerprint=data_fingerprint(profiles),
        data_source=str(getattr(data, "path", "") or data.describe()),
        skipped_files=skipped,
        n_jobs=resolve_n_jobs(cfg.n_jobs),
        vocabulary=vocabulary,
        unmapped_ops=unmapped_ops,
        native_op_columns=native_op_columns,
        unmeasured=unmeasured,
    )


def evaluate_target(paired: PairedRuns, job: Job) -> TargetResult:
    """Cross-validate on held-out groups, then refit on every paired row for the logged model."""
    folds = job.split.folds(paired.keys)
    make_regressor = partial(clone, job.regressor)  # a partial, not a lambda: worker processes get only the regressor
    held_out = cross_validate(
        paired,
        folds,
        make_regressor,
        job.features.select,
        n_jobs=job.n_jobs,
        refit=True,
        progress=f"{paired.target} fits",
    )
    metrics, column_mape = score(held_out, paired.target_profile)
    model, columns = held_out.refit
    from profcast.jobmodel.trained_range import trained_range
    from profcast.pipeline.calibration import NoSizeWhatIf, target_extras

    unmeasured = job.unmeasured.get(paired.target) if job.unmeasured else None
    # A size what-if for a target nobody measured would learn growth from forecasts: none is fitted.
    whatif = NoSizeWhatIf() if unmeasured else job.whatif
    extras, extra_metrics = target_extras(paired, folds, held_out, whatif, n_jobs=job.n_jobs)
    metrics.update(extra_metrics)
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
        "regressor": job.names["regressor"],
        "features": job.names["features"],
        "split": job.names["split"],
        "pairing": paired.mode,
        "n_pairs": len(paired),
        "n_anchor_runs": paired.n_anchor_runs,
        "n_folds": len(folds),
        "n_columns": len(columns),
    }
    result = TargetResult(
        params=params,
        metrics=metrics,
        column_mape=column_mape,
        predictions=predictions,
        truth_ops=op_part(held_out.truth),
        predicted_ops=op_part(held_out.predicted),
        model=model,
        input_example=anchor_frame.head(3),
        extras=extras,
        trained_range=trained_range(
            paired.keys, op_part(paired.anchor_profile.reindex(columns=columns, fill_value=0.0)).sum(axis=1)
        ),
    )
    if unmeasured:
        from profcast.pipeline.unmeasured_target import relabelled_result

        result = relabelled_result(result, unmeasured)
    return result


def train(cfg: DictConfig) -> dict[str, dict]:
    """Run one job: a model per target, each in a nested MLflow run. Returns metrics per target."""
    job = prepare_job(cfg)
    # MLflow loads slowly: import it only once the input is known to be good.
    from profcast.progress import logging_beside_bars, track
    from profcast.serve.recommend import load_catalogue
    from profcast.tracking import provenance
    from profcast.tracking.runs import (
        job_run,
        log_job_metrics,
        log_job_model,
        log_skipped_files,
        log_target_result,
        log_unmapped_ops,
        target_run,
    )
    from profcast.tracking.store import configure_tracking
    from profcast.tracking.summary import log_job_summary
    from profcast.tracking.sweep import sweep_parent_run_id

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
    if job.data_kind == provenance.GENERATED:
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
        from profcast.registration.champion import register_job

        register_job(job_run_id, cfg.registry.alias, cfg.registry.metric)
    if cfg.log_model and not parent_run_id:  # a single job: say where its model is and how to use it
        from profcast.jobmodel.storage import JOB_MODEL_NAME
        from profcast.registration.champion import champion_uri

        served = champion_uri(cfg.anchor, cfg.registry.alias) if cfg.registry.register_single else None
        log.info(
            "[%s] job run %s; forecast with: python -m src.predict --model %s --profile PROFILE; %s",
            job_name,
            job_run_id,
            served or f"runs:/{job_run_id}/{JOB_MODEL_NAME}",
            f"serve it with: mlflow models serve -m {served} --env-manager local"
            if served
            else f"register it to serve (python -m src.registry --run-id {job_run_id}, or train with registry.register_single=true)",
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
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from profcast.tracking.run_endings import run_job

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
    from profcast.cli import exit_code
    from profcast.stops import RUNS_KILLED_NOTE

    # A parallel sweep's parent waits for its workers inside the launcher: a stop there is not inside
    # any job's run_job. Its jobs end their own runs; the sweep's callback ends the parent run at exit.
    sys.exit(exit_code(command, stop_note=RUNS_KILLED_NOTE))


if __name__ == "__main__":
    run_command()
