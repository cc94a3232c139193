"""Choose which op columns form the profile vector, from training rows only."""

from __future__ import annotations

import pandas as pd

from src.errors import ProfcastError

SELECTION_METHODS = ("all", "nonzero", "top")


def select_columns(anchor_train: pd.DataFrame, target_train: pd.DataFrame, method: str, k: int | None = None) -> list[str]:
    """Op columns for the vector: all, those with a non-zero sum, or the top-k by sum.

    Sums run over the training rows of both sides, so a held-out model never
    influences which columns are kept; input and output vectors share the columns.
    """
    column_sums = anchor_train.sum() + target_train.sum()
    if method == "all":
        return list(anchor_train.columns)
    if method == "nonzero":
        return [c for c in anchor_train.columns if column_sums[c] > 0]
    if method == "top":
        if not k or k < 1:
            raise ProfcastError(f"features: method 'top' needs a positive k, got {k!r}")
        ranked = column_sums[column_sums > 0].sort_values(ascending=False, kind="stable")
        return list(ranked.index[:k])
    raise ProfcastError(f"unknown feature selection '{method}'; accepted: {', '.join(SELECTION_METHODS)}")
