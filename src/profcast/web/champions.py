"""The models the page forecasts with: one given ``--model``, or each anchor's registered champion.

Loading a model takes seconds, so each is kept once loaded; a champion is kept under its registry
version, so a new sweep's champion is picked up on the next forecast without a restart.
"""

from __future__ import annotations

import threading

from profcast.champions.register import champion_uri, registered_name
from profcast.errors import ProfcastError
from profcast.forecast.model_lookup import load_job_model
from profcast.serve.model_info import resolved_version
from profcast.tracking.store_checks import check_scheme, sqlite_path


class Champions:
    """Which anchors the page offers and the job model for each (``model_uri`` fixes one model)."""

    def __init__(self, model_uri: str | None, alias: str):
        self.model_uri = model_uri
        self.alias = alias
        self._loaded: dict[tuple[str, str | None], tuple[object, str]] = {}
        self._lock = threading.Lock()
        self.fixed_anchor = None
        if model_uri:  # load it now: a bad --model fails at start, with the CLI's one line
            model, _ = load_job_model(model_uri, None, alias)
            self.fixed_anchor = model.metadata.metadata["anchor"]
            self._loaded[(model_uri, None)] = (model, model_uri)

    def anchors(self) -> list[str]:
        """The anchors a forecast can be asked for: the given model's, else those with a champion in the store."""
        if self.fixed_anchor:
            return [self.fixed_anchor]
        return registered_anchors(self.alias)

    def model(self, anchor: str):
        """(job model, URI) for ``anchor``; the CLI's one-line errors when there is none."""
        if self.fixed_anchor and anchor != self.fixed_anchor:
            raise ProfcastError(
                f"{self.model_uri} predicts from profiles taken on {self.fixed_anchor}, not {anchor}; "
                f"pick {self.fixed_anchor} or start the page without --model"
            )
        uri = self.model_uri or champion_uri(anchor, self.alias)
        version = None if self.model_uri else resolved_version(uri)
        key = (uri, version.version if version is not None else None)
        with self._lock:  # one load per model, however many requests ask at once
            if key not in self._loaded:
                self._loaded[key] = load_job_model(self.model_uri, anchor, self.alias)
            return self._loaded[key]


def registered_anchors(alias: str) -> list[str]:
    """Anchors with a ``profcast-<anchor>@<alias>`` model in the current store, sorted; none in a store not yet made."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    from mlflow import MlflowClient  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    uri = mlflow.get_tracking_uri()
    if check_scheme(uri) == "sqlite" and not sqlite_path(uri).is_file():
        return []  # no store yet: do not create one by looking
    prefix = registered_name("")
    models = MlflowClient().search_registered_models(filter_string=f"name LIKE '{prefix}%'")
    return sorted(model.name.removeprefix(prefix) for model in models if alias in (model.aliases or {}))
