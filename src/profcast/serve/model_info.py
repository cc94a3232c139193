"""What a loaded job model is: its registry version, job run and training data, in words.

``profcast.predict`` prints these lines above its ranking, so a forecast always says which model and
which data it stands on, and warns when that data is the generated default.
"""

from __future__ import annotations

import re

from profcast.datasets.fingerprint import GENERATED
from profcast.tracking.provenance import GENERATED_WARNING, trained_on

ALIAS_URI = re.compile(r"^models:/(?P<name>[^@/]+)@(?P<alias>.+)$")


def resolved_version(uri: str):
    """The registered model version a ``models:/<name>@<alias>`` URI points at, else None."""
    match = ALIAS_URI.match(uri)
    if not match:
        return None
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    try:
        return MlflowClient().get_model_version_by_alias(match["name"], match["alias"])
    except MlflowException:
        return None


def training_data_line(metadata: dict) -> str:
    """``generated data: ... (fingerprint ...)``, or a note that the model predates these records."""
    if "data" not in metadata:
        return "unknown data (the model was logged before profcast recorded its training data)"
    return trained_on(metadata["data"], metadata.get("data_kind", "?"), metadata.get("data_fingerprint", "?"))


def model_lines(uri: str, metadata: dict) -> list[str]:
    """``model: <uri> -> version N, job run R`` and ``trained on: ...`` (+ a warning for generated data)."""
    version = resolved_version(uri)
    job_run = metadata.get("job_run_id") or (version.run_id if version is not None else None)
    where = [f"version {version.version}"] if version is not None else []
    where += [f"job run {job_run}"] if job_run else []
    where += [f"regressor {metadata['regressor']}"] if metadata.get("regressor") else []
    lines = [
        f"model:   {uri}" + (f" -> {', '.join(where)}" if where else ""),
        f"trained on: {training_data_line(metadata)}",
    ]
    if metadata.get("data_kind") == GENERATED:
        lines.append(
            f"warning: {GENERATED_WARNING}; train on real profiles (data=profet or data=file) for real forecasts"
        )
    return lines
