"""The job model a forecast uses: the one at a URI, or the anchor's registered champion, with one-line errors."""

from __future__ import annotations

from profcast.champions.register import champion_uri, registered_name
from profcast.errors import ProfcastError
from profcast.serve.model_folder import load_checked_model


def load_job_model(model_uri: str | None, anchor: str | None, alias: str):
    """The job model at ``model_uri``, or the one registered for the anchor under ``alias``; one-line errors.

    ``anchor`` None (with a ``model_uri``) takes the model's own anchor."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    uri = model_uri or champion_uri(anchor, alias)
    try:
        # Fetch and check the folder first: MLflow would load whatever its MLmodel names.
        model = load_checked_model(mlflow.artifacts.download_artifacts(artifact_uri=uri), shown=uri)
    except MlflowException as error:
        if model_uri is None:
            raise ProfcastError(
                f"no model registered as {registered_name(anchor)}@{alias} in {mlflow.get_tracking_uri()}; "
                f"run the sweep first, e.g. profcast train -m anchor={anchor} regressor=rf,knn,ratio, "
                "or pass --model URI"
            ) from None
        raise ProfcastError(f"cannot load model {uri}: {error.message.splitlines()[0]}") from None
    except OSError as error:
        raise ProfcastError(f"cannot load model {uri}: {error}") from None
    model_anchor = (model.metadata.metadata or {}).get("anchor")
    if model_anchor is None:
        raise ProfcastError(
            f"{uri} is not a profcast job model (no anchor in its metadata); pass a runs:/<job run>/profcast or models:/ URI"
        )
    if anchor is not None and model_anchor != anchor:
        raise ProfcastError(
            f"{uri} predicts from profiles taken on {model_anchor}, not {anchor}; pass --anchor {model_anchor} or another model"
        )
    return model, uri
