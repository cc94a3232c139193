"""Assemble the servable job model from a job's fitted targets: every regressor, its extras and the
columns it accepts, saved in one folder that ``tracking.runs.log_job_model`` hands to MLflow."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from profcast.jobmodel.storage import save_job_model
from profcast.jobmodel.trained_range import merged_range
from profcast.schema import op_part, union_columns
from profcast.vocabulary import canonical_request_columns


@dataclass
class ServableJobModel:
    """What was saved, and what the logged model's signature and example need to say about it."""

    manifest: dict  # save_job_model's manifest: output op columns, latency, interval quantity
    accepted_columns: list[str]  # every op column a request may carry
    input_example: pd.DataFrame  # anchor rows a target was trained on
    targets: list[str]


def assemble_job_model(
    folder,
    anchor: str,
    target_results: dict,
    trained_on: str | None = None,
    vocabulary: dict | None = None,
    native_op_columns: list | None = None,
    memory: dict | None = None,
    unmeasured: dict | None = None,
) -> ServableJobModel:
    """Save every target's fitted regressor (``target_results``: target -> ``.model``, ``.input_example``,
    optional ``.extras`` and ``.trained_range``, e.g. pipeline.job.TargetResult) into ``folder``."""
    models = {target: result.model for target, result in target_results.items()}
    op_columns = union_columns(list(op_part(result.input_example).columns) for result in target_results.values())
    extras = {target: result.extras for target, result in target_results.items() if getattr(result, "extras", None)}
    ranges = [getattr(result, "trained_range", None) for result in target_results.values()]
    manifest = save_job_model(
        folder,
        anchor,
        models,
        op_columns,
        trained_on=trained_on,
        extras=extras,
        sizes=merged_range(ranges) if any(ranges) else None,
        vocabulary=vocabulary,
        memory=memory,
        unmeasured=unmeasured,
    )
    # A canonical model also takes any canonical column: a profile of another framework, mapped first.
    accepted = union_columns([op_columns, native_op_columns or [], canonical_request_columns(vocabulary)])
    return ServableJobModel(
        manifest=manifest,
        accepted_columns=accepted,
        input_example=next(iter(target_results.values())).input_example.reset_index(drop=True),
        targets=list(models),
    )
