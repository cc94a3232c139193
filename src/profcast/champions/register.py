"""Register the best job's servable model as ``profcast-<anchor>`` with the alias ``champion``.

After a -m sweep the sweep callback calls ``register_sweep`` for the sweep's jobs; after a single
run, ``profcast registry`` registers its job (or the best of the experiment).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager

from profcast.errors import ProfcastError
from profcast.jobmodel.storage import JOB_MODEL_TAG, JOB_MODEL_URI_TAG
from profcast.tracking.provenance import DATA_KIND_TAG, DATA_TAG, FINGERPRINT_TAG, TARGETS_TAG, comparable_key
from profcast.tracking.store import configure_tracking

log = logging.getLogger(__name__)

# The alias, the ranking metric and its direction are the ``registry`` block of conf/train.yaml; training
# and `profcast registry` read them from the composed config. Prediction never composes the training
# config: it loads DEFAULT_ALIAS (conf's default, tests/test_architecture.py holds the two together) or --alias.
DEFAULT_ALIAS = "champion"


def registered_name(anchor: str) -> str:
    """The registry name of the models that predict from profiles taken on ``anchor``."""
    return f"profcast-{anchor}"


def champion_uri(anchor: str, alias: str) -> str:
    """``models:/profcast-<anchor>@<alias>``: what serving and the CLI load by default."""
    return f"models:/{registered_name(anchor)}@{alias}"


def job_runs(experiment_id: str, parent_run_id: str | None = None, anchor: str | None = None) -> list:
    """Finished job runs that logged a servable model, optionally of one sweep and one anchor."""
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    conditions = [f"tags.`{JOB_MODEL_TAG}` LIKE '%'", "attributes.status = 'FINISHED'"]
    if parent_run_id:
        conditions.append(f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    if anchor:
        conditions.append(f"params.anchor = '{anchor}'")
    client, runs, page_token = MlflowClient(), [], None
    while True:
        page = client.search_runs([experiment_id], " AND ".join(conditions), max_results=1000, page_token=page_token)
        runs.extend(page)
        page_token = page.token
        if not page_token:
            return runs


def best_runs_by_anchor(runs: list, metric: str, lower_is_better: bool) -> dict:
    """For each anchor, the run with the best finite ``metric`` among the runs comparable with the
    newest one (same data fingerprint, anchor and targets); runs without the metric are passed over."""
    best: dict = {}
    for run in comparable_with_newest(runs):
        value = run.data.metrics.get(metric)
        if value is None or not math.isfinite(value):
            continue
        anchor = run.data.params["anchor"]
        current = best.get(anchor)
        if current is None or _better(value, current.data.metrics[metric], lower_is_better):
            best[anchor] = run
    return best


def comparable_with_newest(runs: list) -> list:
    """Per anchor, keep only the runs scored on the same question as the newest run: the same data
    (fingerprint) and the same targets. A 1-target job on real data and 9-target jobs on generated
    data measure different things, so their errors cannot rank one against the other."""

    newest: dict = {}
    for run in runs:
        anchor = run.data.params.get("anchor")
        if anchor not in newest or run.info.start_time > newest[anchor].info.start_time:
            newest[anchor] = run
    kept = [
        run
        for run in runs
        if comparable_key(run.data.tags) == comparable_key(newest[run.data.params.get("anchor")].data.tags)
    ]
    if len(kept) < len(runs):
        log.info(
            "registry: %d job run(s) passed over: other data or targets than the newest job of their anchor",
            len(runs) - len(kept),
        )
    return kept


def _better(value: float, than: float, lower_is_better: bool) -> bool:
    return value < than if lower_is_better else value > than


def register_job(run, alias: str, metric: str | None = None):
    """Register a job run's model as profcast-<anchor> and point ``alias`` at it; return the version.

    A run already behind the alias is not registered a second time.
    """
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    client = MlflowClient()
    if isinstance(run, str):
        run = client.get_run(run)
    anchor = run.data.params.get("anchor")
    model_name = run.data.tags.get(JOB_MODEL_TAG)
    if not anchor or not model_name:
        raise ProfcastError(
            f"run {run.info.run_id} is not a profcast job run with a logged model (train with log_model=true)"
        )
    name = registered_name(anchor)
    current = _alias_version(client, name, alias)
    if current is not None and current.run_id == run.info.run_id:
        return current

    tags = {"profcast.job_run_id": run.info.run_id, "profcast.regressor": run.data.params.get("regressor", "")}
    tags.update(
        {
            key: run.data.tags[key]
            for key in (DATA_TAG, DATA_KIND_TAG, FINGERPRINT_TAG, TARGETS_TAG)
            if key in run.data.tags
        }
    )
    if metric and metric in run.data.metrics:
        tags[f"profcast.{metric}"] = str(run.data.metrics[metric])
    model_uri = run.data.tags.get(JOB_MODEL_URI_TAG) or f"runs:/{run.info.run_id}/{model_name}"
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    log.info(
        "registered %s version %s (job run %s) as %s",
        name,
        version.version,
        run.info.run_id,
        champion_uri(anchor, alias),
    )
    return version


def register_champions(
    experiment_id: str,
    metric: str,
    lower_is_better: bool,
    alias: str,
    parent_run_id: str | None = None,
    anchor: str | None = None,
) -> dict:
    """Register the best job per anchor (of one sweep if ``parent_run_id``); return {anchor: version}."""
    best = best_runs_by_anchor(job_runs(experiment_id, parent_run_id, anchor), metric, lower_is_better)
    return {name: register_job(run, alias, metric) for name, run in best.items()}


def register_sweep(config, parent_run_id: str) -> dict:
    """The sweep callback's hook: apply the ``registry`` config block to the sweep's jobs."""
    settings = config.registry
    if not settings.enabled:
        return {}

    experiment_id = configure_tracking(config.tracking_uri, config.mlflow_experiment)
    metric = settings.metric
    versions = register_champions(
        experiment_id,
        metric=metric,
        lower_is_better=settings.lower_is_better,
        alias=settings.alias,
        parent_run_id=parent_run_id,
    )
    if not versions:
        log.warning(
            "registry: no job of this sweep logged a model and metric %s (log_model=false?); nothing registered", metric
        )
    return versions


def _alias_version(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


@contextmanager
def store_errors_as_user_errors():
    """An MLflow store or registry error (unknown run, unreachable store) becomes a one-line user error."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    try:
        yield
    except MlflowException as error:
        raise ProfcastError(" ".join(error.message.split())) from None
