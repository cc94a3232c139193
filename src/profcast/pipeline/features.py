"""Choose which op columns form the profile vector, from training rows only.

Each selection is a small class with ``select(anchor_train, target_train) -> columns``, named by a
``conf/features/*.yaml`` option. Sums run over the training rows of both sides, so a held-out model
never influences which columns are kept; input and output vectors share the columns.
"""

from __future__ import annotations

import numbers

import pandas as pd

from profcast.errors import ProfcastError


class AllColumns:
    """Every op column of the data."""

    def select(self, anchor_train: pd.DataFrame, target_train: pd.DataFrame) -> list[str]:
        return list(anchor_train.columns)


class NonzeroColumns:
    """Op columns whose total over the training rows is non-zero."""

    def select(self, anchor_train: pd.DataFrame, target_train: pd.DataFrame) -> list[str]:
        column_sums = anchor_train.sum() + target_train.sum()
        return [c for c in anchor_train.columns if column_sums[c] > 0]


class TopColumns:
    """The ``k`` op columns with the largest total time over the training rows."""

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ProfcastError(f"features.k must be a positive whole number of columns, got {k!r}")
        self.k = int(k)

    @property
    def option_name(self) -> str:
        """What runs call this selection: ``top<k>`` (features=top features.k=25 is top25)."""
        return f"top{self.k}"

    def select(self, anchor_train: pd.DataFrame, target_train: pd.DataFrame) -> list[str]:
        column_sums = anchor_train.sum() + target_train.sum()
        ranked = column_sums[column_sums > 0].sort_values(ascending=False, kind="stable")
        return list(ranked.index[: self.k])
