"""Check a registered model version before anything serves it: `profcast registry --check`.

``mlflow models serve -m models:/profcast-<anchor>@champion`` loads whatever that version's
``MLmodel`` names; anyone allowed to move the alias could point it at a pickled ``python_model``
that runs its code on the serving host. The check resolves the alias to one version, fetches that
version's folder and runs ``model_folder.checked_model_folder`` on it (our loader, no code or
pickle, trusted skops types only). Serve the version it prints, not the alias, so the alias
cannot move between the check and the load.
"""

from __future__ import annotations

from profcast.errors import ProfcastError
from profcast.serve.model_folder import checked_model_folder
from profcast.serve.model_info import resolved_version


def checked_version_uri(model_uri: str) -> str:
    """``models:/<name>/<version>`` of the checked model behind model_uri (an alias or a version); one-line errors."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    version = resolved_version(model_uri)
    if model_uri.startswith("models:/") and "@" in model_uri and version is None:
        raise ProfcastError(f"{model_uri}: no such registered model or alias in {mlflow.get_tracking_uri()}")
    pinned = f"models:/{version.name}/{version.version}" if version is not None else model_uri
    try:
        checked_model_folder(mlflow.artifacts.download_artifacts(artifact_uri=pinned), shown=pinned)
    except MlflowException as error:
        raise ProfcastError(f"cannot fetch {pinned}: {error.message.splitlines()[0]}") from None
    except OSError as error:
        raise ProfcastError(f"cannot fetch {pinned}: {error}") from None
    return pinned
