"""A second anchor profile of the same job at another batch size: a latency model that reads both.

One profile says how long each op takes; it does not say how that time grows with the batch, i.e.
how much of a step is fixed (launches, host work) and how much scales with the work, which is what
decides how much a faster GPU helps. A second profile of the same job at batch size b2 shows it. This
model predicts log(target latency at b / anchor latency at b) from both profiles' latency, busy,
idle and host times, their growth per doubling of the batch, log2(b2/b), and the target's busy time
at b (learned on the measured one, fed the one the op-vector regressor predicts), and is averaged in
log space with the one-profile forecast.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from profcast.regressors.transfer import time_kinds
from profcast.schema import BATCH_LATENCY, aligned_ops, op_part

JOB_RUN_KEYS = ["dataset", "model", "optimizer", "anchor_exp"]  # one run series of a job on the anchor


def second_profile_rows(keys: pd.DataFrame, every: bool = False) -> pd.DataFrame:
    """Pairs (row, second_row) of paired rows of the same job and anchor repetition at another batch size.

    With ``every`` each row is paired with every other batch size (training); otherwise with one:
    twice its batch size when profiled, else half, else the nearest (prediction). Rows without any
    other batch size are left out.
    """
    runs = keys[JOB_RUN_KEYS + ["batchsize"]].reset_index(drop=True).assign(row=np.arange(len(keys)))
    firsts = runs.drop_duplicates(JOB_RUN_KEYS + ["batchsize"]).rename(
        columns={"batchsize": "second_batchsize", "row": "second_row"}
    )
    pairs = runs.merge(firsts, on=JOB_RUN_KEYS)
    pairs = pairs[pairs["second_batchsize"] != pairs["batchsize"]]
    if not every and not pairs.empty:
        ratio = np.log2(pairs["second_batchsize"].astype(float) / pairs["batchsize"].astype(float))
        # Rank: doubling first, then halving, then by distance (larger before smaller).
        pairs = pairs.assign(rank=np.where(ratio == 1, -2, np.where(ratio == -1, -1, np.abs(ratio) * 2 - (ratio > 0))))
        pairs = pairs.sort_values(["row", "rank"]).drop_duplicates("row").drop(columns="rank")
    return pairs[["row", "second_row", "batchsize", "second_batchsize"]].reset_index(drop=True)


def profile_times(profile: pd.DataFrame, op_columns: list[str]) -> np.ndarray:
    """Per run: log latency, log1p busy, device idle, host and host idle time, log1p total."""
    ops = aligned_ops(profile, op_columns)
    kinds = time_kinds(op_columns)
    latency = profile[BATCH_LATENCY].to_numpy(float)
    return np.column_stack(
        [
            np.log(latency),
            *(np.log1p(ops[:, kinds[kind]].sum(axis=1)) for kind in ("busy", "device_idle", "other", "other_idle")),
            np.log1p(ops.sum(axis=1)),
        ]
    )


class SecondProfileLatency(BaseEstimator):
    """log(target / anchor latency) at the first profile's batch size, from two anchor profiles.

    Attributes
    ----------
    op_columns_ : list of str
    model_ : HistGradientBoostingRegressor
    """

    _parameter_constraints: dict = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, max_iter: int = 150, random_state: int = 0):
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, anchor_profile, second_profile, target_profile, batch, second_batch):
        """Row-aligned: each anchor run, its second profile, the target run at the first batch size."""
        self._validate_params()
        self.op_columns_ = list(op_part(target_profile).columns)
        target_ops = aligned_ops(target_profile, self.op_columns_)
        features = self._features(anchor_profile, second_profile, target_ops, batch, second_batch)
        label = np.log(target_profile[BATCH_LATENCY].to_numpy(float) / anchor_profile[BATCH_LATENCY].to_numpy(float))
        usable = np.isfinite(label) & np.isfinite(features[:, :12]).all(axis=1)
        if not usable.any():
            raise ValueError("no run has a latency on the anchor, its second profile and the target")
        self.model_ = HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            max_leaf_nodes=31,
            min_samples_leaf=min(20, max(5, int(usable.sum()) // 20)),
            loss="absolute_error",
            early_stopping=False,
            random_state=self.random_state,
        ).fit(features[usable], label[usable])
        return self

    def predict(self, anchor_profile, second_profile, predicted_target_ops, batch, second_batch) -> np.ndarray:
        """log(target / anchor latency) per run; `predicted_target_ops` is the one-profile op forecast."""
        check_is_fitted(self)
        target_ops = aligned_ops(pd.DataFrame(predicted_target_ops, columns=self.op_columns_), self.op_columns_)
        return self.model_.predict(self._features(anchor_profile, second_profile, target_ops, batch, second_batch))

    def _features(self, anchor_profile, second_profile, target_ops, batch, second_batch) -> np.ndarray:
        first = profile_times(anchor_profile, self.op_columns_)
        second = profile_times(second_profile, self.op_columns_)
        moved = np.log2(np.asarray(second_batch, dtype=float) / np.asarray(batch, dtype=float))
        growth = (second - first) / moved[:, None]  # per doubling of the batch
        target_busy = np.log1p(target_ops[:, time_kinds(self.op_columns_)["busy"]].sum(axis=1))
        return np.column_stack(
            [
                first,
                second,
                moved,
                np.log2(np.asarray(batch, dtype=float)),
                growth,
                target_busy,
                target_busy - first[:, 1],
            ]
        )
