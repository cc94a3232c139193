"""What a job was trained on, as runs and forecasts show it: the data's description, kind and fingerprint
(worked out with the data, ``profcast.datasets.fingerprint``).

Job runs carry these as tags and params, the job model carries them in its metadata, and
``profcast.predict`` and the served output repeat them, so no forecast hides that it stands on the
generated default data. The registry compares only jobs with the same fingerprint, anchor and targets.
"""

from __future__ import annotations

import warnings

import pandas as pd

GENERATED_WARNING = "trained on generated data: these are not real measurements"
# Tags on job runs (and their target runs); the registry compares only jobs whose fingerprint,
# anchor and targets tags are equal (comparable_key).
DATA_TAG = "profcast.data"
DATA_KIND_TAG = "profcast.data_kind"
FINGERPRINT_TAG = "profcast.data_fingerprint"
ANCHOR_TAG = "profcast.anchor"
TARGETS_TAG = "profcast.targets"
RUN_KIND_TAG = "profcast.run_kind"  # sweep | job | target: tells the UI's rows apart


def trained_on(description: str, kind: str, fingerprint: str) -> str:
    """One line naming the training data, as the CLI, the plot and the served output show it."""
    return f"{kind} data: {description} (fingerprint {fingerprint})"


def job_tags(description: str, kind: str, fingerprint: str, anchor: str, targets) -> dict[str, str]:
    """Tags that say what a job stands on and which jobs it can be compared with."""
    return {
        DATA_TAG: description,
        DATA_KIND_TAG: kind,
        FINGERPRINT_TAG: fingerprint,
        ANCHOR_TAG: anchor,
        TARGETS_TAG: ",".join(sorted(targets)),
    }


def comparable_key(tags: dict) -> tuple[str, str, str]:
    """(fingerprint, anchor, targets): jobs with equal keys were scored on the same question."""
    return tags.get(FINGERPRINT_TAG, ""), tags.get(ANCHOR_TAG, ""), tags.get(TARGETS_TAG, "")


def dataset_input(profiles: pd.DataFrame, name: str, source: str):
    """The profile table as an MLflow dataset, for ``mlflow.log_input`` (the UI's Dataset column)."""

    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    # MLflow warns that a description as source matches two resolvers (either is right), that
    # integer key columns (batchsize) cannot hold NaN, and about pandas internals: none is the user's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(profiles, name=name, source=source)
        dataset._to_mlflow_entity()  # computes (and keeps) the schema and profile now, under this filter
    return dataset
