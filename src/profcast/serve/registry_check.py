"""Check a registered model version before anything serves it: `profcast registry --check`.

``mlflow models serve -m models:/profcast-<anchor>@champion`` loads whatever that version's
``MLmodel`` names; anyone allowed to move the alias could point it at a pickled ``python_model``
that runs its code on the serving host. The check resolves the alias to one version, fetches that
version's folder and runs ``model_folder.checked_model_folder`` on it (our loader, no code or
pickle, trusted skops types only). It then checks that the model is what its name says: the anchor
the model itself answers for (its manifest, and its metadata) is the ``<anchor>`` of
``profcast-<anchor>``, and its training data's fingerprint is the one the version and its job run
were registered with. Serve the version it prints, not the alias, so the alias cannot move between
the check and the load.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from profcast.errors import ProfcastError
from profcast.serve.model_folder import checked_model_folder
from profcast.serve.model_info import resolved_version
from profcast.tracking.provenance import FINGERPRINT_TAG

VERSION_URI = re.compile(r"^models:/(?P<name>[^@/]+)/(?P<version>\d+)$")
NAME_PREFIX = "profcast-"


def checked_version_uri(model_uri: str) -> str:
    """``models:/<name>/<version>`` of the checked model behind model_uri (an alias or a version); one-line errors."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    version = resolved_version(model_uri)
    if model_uri.startswith("models:/") and "@" in model_uri and version is None:
        raise ProfcastError(f"{model_uri}: no such registered model or alias in {mlflow.get_tracking_uri()}")
    pinned = f"models:/{version.name}/{version.version}" if version is not None else model_uri
    try:
        folder = checked_model_folder(mlflow.artifacts.download_artifacts(artifact_uri=pinned), shown=pinned)
        named = VERSION_URI.match(pinned)
        if named:
            registered = version or mlflow.MlflowClient().get_model_version(named["name"], named["version"])
            check_model_matches_its_name(pinned, folder, registered)
    except MlflowException as error:
        raise ProfcastError(f"cannot fetch {pinned}: {error.message.splitlines()[0]}") from None
    except OSError as error:
        raise ProfcastError(f"cannot fetch {pinned}: {error}") from None
    return pinned


def model_anchor_and_fingerprint(folder: Path) -> tuple[str | None, str | None, str | None]:
    """(anchor of the manifest, anchor of the MLmodel metadata, data fingerprint of the metadata) of a checked folder."""

    spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    metadata = spec.get("metadata") or {}
    data = folder / str(spec["flavors"]["python_function"]["data"])
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    return manifest.get("anchor"), metadata.get("anchor"), metadata.get("data_fingerprint")


def check_model_matches_its_name(shown: str, folder: Path, version) -> None:
    """Refuse, in one line, a version of ``profcast-<anchor>`` whose model answers for another anchor or was
    trained on other data than its version and job run were registered with."""
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    served_anchor, metadata_anchor, fingerprint = model_anchor_and_fingerprint(folder)
    if not version.name.startswith(NAME_PREFIX):
        raise ProfcastError(f"{shown}: not a profcast registered model (its name does not start with {NAME_PREFIX})")
    named_anchor = version.name.removeprefix(NAME_PREFIX)
    for anchor in (served_anchor, metadata_anchor):
        if anchor is not None and anchor != named_anchor:
            raise ProfcastError(
                f"{shown}: its model forecasts from anchor {anchor!r}, not {named_anchor!r} as the name "
                f"{version.name} says; refusing to serve it (re-register the right job as {NAME_PREFIX}{anchor})"
            )
    recorded = {"the version": (version.tags or {}).get(FINGERPRINT_TAG)}
    if version.run_id:
        try:
            recorded["its job run"] = MlflowClient().get_run(version.run_id).data.tags.get(FINGERPRINT_TAG)
        except MlflowException:
            recorded["its job run"] = None  # a run deleted since: the version's own tag still speaks
    for where, expected in recorded.items():
        if expected and fingerprint and expected != fingerprint:
            raise ProfcastError(
                f"{shown}: its model was trained on data with fingerprint {fingerprint}, but {where} records "
                f"{expected}; refusing to serve it"
            )
