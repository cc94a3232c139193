"""Validation splits that hold out whole models (or model groups), never random rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, PredefinedSplit

from profcast.errors import ProfcastError
from profcast.schema import WORKLOAD_KEYS


class GroupSplit:
    """Leave one group out, a group being the rows that share ``group_keys``; or one fixed fold.

    ``holdout`` (model names) replaces leave-one-group-out by a single fold that holds out those
    models. A single name is one model, never its letters.
    """

    def __init__(self, group_keys=("model",), holdout=None):
        group_keys = [group_keys] if isinstance(group_keys, str) else list(group_keys or [])
        unknown = [key for key in group_keys if key not in WORKLOAD_KEYS]
        if not group_keys or unknown:
            raise ProfcastError(
                f"split.group_keys must name workload keys ({', '.join(WORKLOAD_KEYS)}); got {group_keys}"
            )
        self.group_keys = group_keys
        holdout = [holdout] if isinstance(holdout, (str, int)) else list(holdout or [])
        self.holdout = [str(model) for model in holdout]

    def groups(self, keys: pd.DataFrame) -> np.ndarray:
        """One group label per paired row: rows of a group are always held out together."""
        return keys[self.group_keys].astype(str).agg("/".join, axis=1).to_numpy()

    def folds(self, keys: pd.DataFrame) -> list:
        """(train_index, test_index) pairs: leave-one-group-out, or one fold holding out the holdout models."""
        if self.holdout:
            return self._holdout_fold(keys)
        groups = self.groups(keys)
        if len(np.unique(groups)) < 2:
            raise ProfcastError(
                f"split by {'+'.join(self.group_keys)} needs at least two groups; the data has one ({groups[0]})"
            )
        return list(LeaveOneGroupOut().split(keys, groups=groups))

    def _holdout_fold(self, keys: pd.DataFrame) -> list:
        models = keys["model"].astype(str)
        unknown = sorted(set(self.holdout) - set(models))
        if unknown:
            raise ProfcastError(
                f"split.holdout names unknown model(s) {', '.join(unknown)}; models in the data: "
                f"{', '.join(sorted(models.unique()))}"
            )
        held_out = models.isin(self.holdout).to_numpy()
        if held_out.all():
            raise ProfcastError("split.holdout holds out every model; leave at least one to train on")
        return list(PredefinedSplit(np.where(held_out, 0, -1)).split())
