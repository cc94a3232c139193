"""A job's core: build every option a config names, load and pair the data (``prepare_job``), and
cross-validate, calibrate and refit one anchor->target regressor (``evaluate_target``).

Nothing here opens an MLflow run: ``profcast.train`` logs what these return, so bad input fails before
anything is logged and tests can run a job's parts without a store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import pandas as pd
from omegaconf import DictConfig
from sklearn.base import clone

from profcast.config import checked_estimator, instantiate_option, option_choices, option_name
from profcast.datasets.fingerprint import data_fingerprint, data_kind
from profcast.jobmodel.trained_range import trained_range
from profcast.pipeline.calibration import NoSizeWhatIf, target_extras
from profcast.pipeline.evaluation import cross_validate, score, vector_frames
from profcast.pipeline.pairing import PairedRuns, resolve_targets
from profcast.pipeline.parallel import resolve_n_jobs
from profcast.pipeline.unmeasured_target import (
    neusight_folder_of,
    refuse_a_target_that_leaves_out,
    relabelled_result,
    target_rows,
)
from profcast.schema import op_columns, op_part
from profcast.vocabulary import unmapped_note

log = logging.getLogger(__name__)

# The option groups a job builds (conf/<group>/), each named in the runs by the option picked.
OPTION_GROUPS = ("data", "features", "split", "regressor", "pairing", "whatif", "vocabulary")


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
    data_kind: str = ""  # generated | real (profcast.datasets.fingerprint)
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
        refuse_a_target_that_leaves_out(cfg.target_gpu, cfg.target)  # before that model trains (minutes)
        profiles, added = target_rows(
            profiles, cfg.anchor, cfg.target_gpu, neusight_folder_of(data), cfg.per_call.max_iter
        )
        unmeasured[added.name] = added
    native_op_columns = op_columns(profiles.columns)
    profiles, unmapped_ops = vocabulary.apply(profiles)  # before pairing: every model reads the same names
    if unmapped_ops is not None and not unmapped_ops.empty:
        log.warning("%s", unmapped_note(unmapped_ops))
    targets = resolve_targets(profiles, cfg.anchor, cfg.target)
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
        result = relabelled_result(result, unmeasured)
    return result
