"""Validation splits that hold out whole models (or model groups), never random rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import LeaveOneGroupOut, PredefinedSplit

from src.errors import ProfcastError

# Which workload keys form one held-out group in each scheme.
GROUP_KEYS = {
    "model": ["model"],
    "model_dataset": ["model", "dataset"],
    "model_dataset_batch": ["model", "dataset", "batchsize"],
}


def validation_groups(keys: pd.DataFrame, scheme: str) -> np.ndarray:
    """One group label per paired row: rows of a group are always held out together."""
    if scheme not in GROUP_KEYS:
        raise ProfcastError(f"unknown split '{scheme}'; accepted: {', '.join(GROUP_KEYS)}")
    return keys[GROUP_KEYS[scheme]].astype(str).agg("/".join, axis=1).to_numpy()


def validation_folds(keys: pd.DataFrame, scheme: str, holdout: list[str] | None = None):
    """(train_index, test_index) pairs: leave-one-group-out, or one fold holding out `holdout` models."""
    groups = validation_groups(keys, scheme)
    if holdout:
        models = keys["model"].astype(str)
        unknown = sorted(set(holdout) - set(models))
        if unknown:
            raise ProfcastError(
                f"split.holdout names unknown model(s) {', '.join(unknown)}; models in the data: "
                f"{', '.join(sorted(models.unique()))}"
            )
        held_out = models.isin(holdout).to_numpy()
        if held_out.all():
            raise ProfcastError("split.holdout holds out every model; leave at least one to train on")
        return list(PredefinedSplit(np.where(held_out, 0, -1)).split())
    if len(np.unique(groups)) < 2:
        raise ProfcastError(f"split '{scheme}' needs at least two groups; the data has one ({groups[0]})")
    return list(LeaveOneGroupOut().split(keys, groups=groups))
