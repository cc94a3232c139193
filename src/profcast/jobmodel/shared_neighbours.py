"""One neighbour search for every target whose kNN model was fitted on the same anchor rows.

A job model holds one kNN per target instance. When every workload was profiled on every target,
all of them store the same anchor rows and differ only in the target profiles they average, so
each request row has the same neighbours for every target. Searching once and averaging all
targets' profiles in one go turns 9 searches (and 9 rounds of scikit-learn's input checks) into
one. The answers are the per-target ones to the bit: a group is only formed when a check on its
own training rows, made at load, gives exactly what the per-target models give.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.neighbors import KNeighborsRegressor

from profcast.regressors.profile_regressor import ProfileRegressor
from profcast.schema import aligned_ops

log = logging.getLogger(__name__)
CHECK_ROWS = 64  # training rows predicted both ways at load before a group is trusted


class SharedNeighbours:
    """Targets (ProfileRegressor over a kNN, optionally log1p-wrapped) that share their fitted anchor rows."""

    def __init__(self, targets: list[str], models: dict):

        self.targets = targets
        self.models = {target: models[target] for target in targets}
        first = self.models[targets[0]]
        self.op_columns = first.op_columns_
        searches = [_neighbour_search(model) for model in self.models.values()]
        # One kNN whose outputs are every target's outputs side by side: same rows, same parameters.
        self.search = clone(searches[0]).fit(
            searches[0]._fit_X, np.hstack([_stored_targets(search) for search in searches])
        )
        widths = [_stored_targets(search).shape[1] for search in searches]
        self.bounds = np.cumsum([0, *widths])

    def predict(self, anchor_profiles: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each target's raw prediction (its ``output_columns_``), as its own ``predict`` would give it."""
        averaged = self.search.predict(aligned_ops(anchor_profiles, self.op_columns))
        answers = {}
        for number, (target, model) in enumerate(self.models.items()):
            predicted = averaged[:, self.bounds[number] : self.bounds[number + 1]]
            if model.vector_model_ is not _neighbour_search(model):  # log1p: back to microseconds
                predicted = model.vector_model_.transformer_.inverse_transform(predicted)
            answers[target] = model.with_latency(np.asarray(predicted, dtype=float).reshape(len(anchor_profiles), -1))
        return answers

    def answers_exactly(self) -> bool:
        """Whether this group's answers equal the per-target models' on (some of) their training rows."""
        rows = pd.DataFrame(
            _neighbour_search(self.models[self.targets[0]])._fit_X[:CHECK_ROWS], columns=self.op_columns
        )
        shared = self.predict(rows)
        return all(
            np.array_equal(shared[target], model.predict(rows), equal_nan=True) for target, model in self.models.items()
        )


def shared_neighbour_groups(models: dict) -> list[SharedNeighbours]:
    """Groups of two or more targets whose kNN models can share one search (checked to answer exactly)."""
    by_rows: dict[tuple, list[str]] = {}
    for target, model in models.items():
        search = _neighbour_search(model)
        if search is None:
            continue
        key = (
            tuple(model.op_columns_),
            repr(sorted(search.get_params().items())),
            type(model.vector_model_),
            search._fit_X.shape,
            search._fit_X.tobytes(),
        )
        by_rows.setdefault(key, []).append(target)
    groups = []
    for targets in by_rows.values():
        if len(targets) < 2:
            continue
        try:
            group = SharedNeighbours(targets, models)
            exact = group.answers_exactly()
        except Exception as error:  # an estimator this path does not know: the per-target path answers
            log.info(
                "targets %s keep their own neighbour search (%s: %s)", ", ".join(targets), type(error).__name__, error
            )
            continue
        if exact:
            groups.append(group)
        else:
            log.info("targets %s keep their own neighbour search: a shared one answers differently", ", ".join(targets))
    return groups


def _neighbour_search(model):
    """The fitted KNeighborsRegressor inside a ProfileRegressor (bare or log1p-wrapped), or None."""

    if not isinstance(model, ProfileRegressor) or not hasattr(model, "vector_model_"):
        return None
    vector = model.vector_model_
    if isinstance(vector, TransformedTargetRegressor):
        vector = vector.regressor_
    return vector if isinstance(vector, KNeighborsRegressor) and hasattr(vector, "_fit_X") else None


def _stored_targets(search) -> np.ndarray:
    """The target rows a fitted kNN averages, as a 2-D array."""
    stored = np.asarray(search._y)
    return stored.reshape(len(stored), -1)
