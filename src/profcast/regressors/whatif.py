"""Batch-size and input-size what-if: a target's step time and op vector at another size than the one profiled.

From an anchor run at batch size b and input size s, the forecast at (b', s') is the target's
forecast at (b, s) (any profile regressor, e.g. TransferRegressor) scaled by a learned growth
factor: log(target time at b', s') - log(target time at b, s). The factor is learned from the data's
own grid of sizes: every anchor run of a training model is paired with every other size of the same
model (and optimizer) on the target, and a boosted model reads what the anchor run says about the
job (latency, busy and idle time, every op's time: how launch-bound it is) plus log2 b, log2 s and
the moves log2(b'/b), log2(s'/s). Labels use the medians over the target's repetitions, so the
factor is not fitted to run-to-run noise. One model serves step time; a second one, over (run, op)
cells, scales each op (an op that did not run stays 0).
"""

from __future__ import annotations

import re
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from profcast.regressors.transfer import time_kinds
from profcast.schema import BATCH_LATENCY, WORKLOAD_KEYS, aligned_ops, op_part

LARGEST_MOVE = 4  # size moves of 2^4 and beyond share one interval stratum
JOB_KEYS = ["dataset", "model", "optimizer"]  # one job: batch size and input size may vary
MAX_OP_CODES = 254
NO_SIZE_PAIRS = "no job was profiled at two sizes on the target"  # SizeWhatIf.fit's ValueError starts so


def input_size(dataset) -> float:
    """The input size a dataset name leads with ('224dataset' -> 224, PROFET's naming), else NaN.

    Only a leading number counts: in 'cifar10' or 'cifar100' the number names the classes, not the size.
    """
    found = re.match(r"\d+", str(dataset))
    return float(found.group()) if found else float("nan")


def size_features(batch, dataset, new_batch, new_dataset) -> np.ndarray:
    """Per row: log2 b, log2 s, log2(b'/b), log2(s'/s).

    A dataset name without an input size gives log2 s = -1 (no real size is below 1) and no size
    move: constants rather than NaN, because HistGradientBoosting cannot bin a column that is all NaN.
    """
    batch, new_batch = np.asarray(batch, dtype=float), np.asarray(new_batch, dtype=float)
    size = np.array([input_size(d) for d in np.asarray(dataset)], dtype=float)
    new_size = np.array([input_size(d) for d in np.asarray(new_dataset)], dtype=float)
    with np.errstate(invalid="ignore"):
        log_size, log_size_move = np.log2(size), np.log2(new_size / size)
    log_size = np.where(np.isfinite(log_size), log_size, -1.0)
    log_size_move = np.where(np.isfinite(log_size_move), log_size_move, 0.0)
    return np.column_stack([np.log2(batch), log_size, np.log2(new_batch / batch), log_size_move])


def run_features(anchor_profile: pd.DataFrame, op_columns: list[str]) -> np.ndarray:
    """Per anchor run: log latency (NaN when unknown), log1p busy / idle / host time, log1p total, log1p of every op."""
    ops = aligned_ops(anchor_profile, op_columns)
    kinds = time_kinds(op_columns)
    latency = (
        anchor_profile[BATCH_LATENCY].to_numpy(dtype=float)
        if BATCH_LATENCY in anchor_profile
        else np.full(len(ops), np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        log_latency = np.where(latency > 0, np.log(latency), np.nan)
    kind_times = [np.log1p(ops[:, kinds[kind]].sum(axis=1)) for kind in ("busy", "device_idle", "other", "other_idle")]
    return np.column_stack([log_latency, *kind_times, np.log1p(ops.sum(axis=1)), np.log1p(ops)])


def workload_medians(keys: pd.DataFrame, profile: pd.DataFrame, exp_column: str = "target_exp") -> pd.DataFrame:
    """One row per workload: the median of each column over its distinct repetitions."""
    runs = pd.concat(
        [keys[WORKLOAD_KEYS + [exp_column]].reset_index(drop=True), profile.reset_index(drop=True)], axis=1
    )
    runs = runs.drop_duplicates(WORKLOAD_KEYS + [exp_column])
    return runs.groupby(WORKLOAD_KEYS, as_index=False, sort=False)[list(profile.columns)].median()


class SizeGrowthLaw(BaseEstimator):
    """log growth = a * log2(b'/b) + c * log2(s'/s): a power law of the size move, least squares through 0.

    The latency what-if for a target with too few size pairs to boost (NeuSight's data: two batch
    sizes per job), where a tree cannot split and would forecast no growth at all. Reads the last
    two columns of SizeWhatIf's features (the batch and input-size moves).
    """

    def fit(self, features, label):
        """Least-squares exponents of the size moves (minimum norm when a move never varies)."""
        moves = np.asarray(features, dtype=float)[:, -2:]
        self.coef_ = np.linalg.lstsq(moves, np.asarray(label, dtype=float), rcond=None)[0]
        return self

    def predict(self, features) -> np.ndarray:
        """The log growth of each row's size move."""
        check_is_fitted(self)
        return np.asarray(features, dtype=float)[:, -2:] @ self.coef_


class SizeWhatIf(BaseEstimator):
    """Learned growth of a target's step time (and op times) from one size of a job to another.

    ``fit(keys, anchor_profile, target_profile)`` takes row-aligned paired runs (as PairedRuns
    holds them); ``log_scale`` / ``op_log_scale`` give the growth factors for new sizes, and
    ``forecast`` applies them to a forecast at the profiled size.

    Attributes
    ----------
    op_columns_ : list of str
    latency_model_ : HistGradientBoostingRegressor, SizeGrowthLaw or None
        log(target latency at b', s') - log(target latency at b, s); None without latencies; a
        power law of the size move below ``min_boosting_rows`` size pairs.
    op_model_ : HistGradientBoostingRegressor or None
        The same for each op cell; None when ``predict_ops`` is False.
    """

    _parameter_constraints: dict = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "max_training_rows": [Interval(Integral, 1, None, closed="left")],
        "cross_dataset": ["boolean"],
        "predict_ops": ["boolean"],
        "min_boosting_rows": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        max_iter: int = 150,
        max_training_rows: int = 10000,
        cross_dataset: bool = True,
        predict_ops: bool = True,
        min_boosting_rows: int = 40,
        random_state: int = 0,
    ):
        self.max_iter = max_iter
        self.max_training_rows = max_training_rows
        self.cross_dataset = cross_dataset
        self.predict_ops = predict_ops
        self.min_boosting_rows = min_boosting_rows
        self.random_state = random_state

    def fit(self, keys: pd.DataFrame, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame):
        """Learn the growth factors from every (anchor run, other size of its job on the target) pair."""
        self._validate_params()
        rng = np.random.default_rng(self.random_state)
        self.op_columns_ = list(op_part(target_profile).columns)
        keys = keys.reset_index(drop=True)
        medians = workload_medians(keys, target_profile)
        pairs = self._size_pairs(keys, medians)
        if pairs.empty:
            raise ValueError(f"{NO_SIZE_PAIRS}; nothing to learn a size what-if from")
        features = np.column_stack(
            [
                run_features(anchor_profile.iloc[pairs["row"]], self.op_columns_),
                size_features(pairs["batchsize"], pairs["dataset"], pairs["new_batchsize"], pairs["new_dataset"]),
            ]
        )
        self.latency_model_ = None
        if BATCH_LATENCY in medians:
            label = np.log(pairs["new_latency"].to_numpy(float) / pairs["latency"].to_numpy(float))
            usable = np.flatnonzero(np.isfinite(label))
            usable = self._subsample(usable, rng)
            if usable.size >= self.min_boosting_rows:
                self.latency_model_ = self._boosted(usable.size).fit(features[usable], label[usable])
            elif usable.size:
                # Too few pairs for a tree to split (min_samples_leaf >= 5): it would forecast the mean, no growth.
                self.latency_model_ = SizeGrowthLaw().fit(features[usable], label[usable])
        self.op_model_ = self._fit_op_model(anchor_profile, medians, pairs, features, rng) if self.predict_ops else None
        return self

    def _size_pairs(self, keys: pd.DataFrame, medians: pd.DataFrame) -> pd.DataFrame:
        """(paired row, new size) combinations with the target's median latency at both sizes."""
        rows = keys[WORKLOAD_KEYS].assign(row=np.arange(len(keys)), own=0)
        value = [BATCH_LATENCY] if BATCH_LATENCY in medians else []
        own = medians[WORKLOAD_KEYS + value].rename(columns={BATCH_LATENCY: "latency"})
        rows = rows.merge(own, on=WORKLOAD_KEYS)
        other = medians[WORKLOAD_KEYS + value].rename(
            columns={"dataset": "new_dataset", "batchsize": "new_batchsize", BATCH_LATENCY: "new_latency"}
        )
        on = ["model", "optimizer"] + ([] if self.cross_dataset else ["dataset"])
        if not self.cross_dataset:
            other = other.rename(columns={"new_dataset": "dataset"})
        pairs = rows.merge(other, on=on)
        if not self.cross_dataset:
            pairs["new_dataset"] = pairs["dataset"]
        moved = (pairs["new_dataset"] != pairs["dataset"]) | (pairs["new_batchsize"] != pairs["batchsize"])
        return pairs[moved].reset_index(drop=True)

    def _fit_op_model(self, anchor_profile, medians, pairs, features, rng):
        """The per-cell growth model, on a sample of (pair, op) cells the anchor and both target sizes ran."""
        anchor_ops = aligned_ops(anchor_profile, self.op_columns_)[pairs["row"]]
        index = medians.set_index(WORKLOAD_KEYS)
        own = index.loc[pd.MultiIndex.from_frame(pairs[WORKLOAD_KEYS]), self.op_columns_].to_numpy(float)
        new_keys = pairs[["new_dataset", "model", "optimizer", "new_batchsize"]].set_axis(WORKLOAD_KEYS, axis=1)
        new = index.loc[pd.MultiIndex.from_frame(new_keys), self.op_columns_].to_numpy(float)
        pair_rows, ops = np.nonzero((anchor_ops > 0) & (own > 0) & (new > 0))
        if pair_rows.size == 0:
            return None
        chosen = self._subsample(np.arange(pair_rows.size), rng)
        pair_rows, ops = pair_rows[chosen], ops[chosen]
        cells = self._cell_features(anchor_ops, features, pair_rows, ops)
        label = np.log(new[pair_rows, ops] / own[pair_rows, ops])
        return self._boosted(label.size, categorical=[0]).fit(cells, label)

    def _cell_features(self, anchor_ops, features, rows, ops) -> np.ndarray:
        codes = np.where(ops < MAX_OP_CODES, ops, np.nan)
        share = anchor_ops[rows, ops] / anchor_ops[rows].sum(axis=1)
        # The run context without every op's time: the op code and its size carry the op.
        return np.column_stack(
            [codes, np.log(anchor_ops[rows, ops]), np.log(share), features[rows, :6], features[rows, -4:]]
        )

    def log_scale(self, anchor_profile, batch, dataset, new_batch, new_dataset) -> np.ndarray:
        """log(target latency at the new size / at the profiled size), per anchor run."""
        check_is_fitted(self)
        if self.latency_model_ is None:
            raise ValueError("this what-if model learned no step time (its training data had no batch_latency)")
        same = (np.asarray(batch) == np.asarray(new_batch)) & (np.asarray(dataset) == np.asarray(new_dataset))
        scale = self.latency_model_.predict(self._features(anchor_profile, batch, dataset, new_batch, new_dataset))
        return np.where(same, 0.0, scale)

    def op_log_scale(self, anchor_profile, batch, dataset, new_batch, new_dataset) -> np.ndarray:
        """log growth of every op cell (runs x op_columns_); 0 where the anchor op did not run."""
        check_is_fitted(self)
        anchor_ops = aligned_ops(anchor_profile, self.op_columns_)
        scale = np.zeros_like(anchor_ops)
        if self.op_model_ is None:
            return scale
        features = self._features(anchor_profile, batch, dataset, new_batch, new_dataset)
        rows, ops = np.nonzero(anchor_ops > 0)
        if rows.size:
            scale[rows, ops] = self.op_model_.predict(self._cell_features(anchor_ops, features, rows, ops))
        same = (np.asarray(batch) == np.asarray(new_batch)) & (np.asarray(dataset) == np.asarray(new_dataset))
        scale[same] = 0.0
        return scale

    def forecast(self, base: pd.DataFrame, anchor_profile, batch, dataset, new_batch, new_dataset) -> pd.DataFrame:
        """Scale `base` (the target forecast at the profiled size: op columns and/or batch_latency) to the new size."""
        out = base.copy()
        if BATCH_LATENCY in out:
            out[BATCH_LATENCY] = out[BATCH_LATENCY].to_numpy(float) * np.exp(
                self.log_scale(anchor_profile, batch, dataset, new_batch, new_dataset)
            )
        ops = [c for c in self.op_columns_ if c in out]
        if ops and self.op_model_ is not None:
            scale = pd.DataFrame(
                self.op_log_scale(anchor_profile, batch, dataset, new_batch, new_dataset), columns=self.op_columns_
            )
            out[ops] = out[ops].to_numpy(float) * np.exp(scale[ops].to_numpy())
        return out

    def _features(self, anchor_profile, batch, dataset, new_batch, new_dataset) -> np.ndarray:
        n = len(anchor_profile)
        sizes = [np.broadcast_to(np.asarray(v, dtype=object), (n,)) for v in (batch, dataset, new_batch, new_dataset)]
        return np.column_stack([run_features(anchor_profile, self.op_columns_), size_features(*sizes)])

    def _subsample(self, rows: np.ndarray, rng) -> np.ndarray:
        if rows.size > self.max_training_rows:
            rows = np.sort(rng.choice(rows, self.max_training_rows, replace=False))
        return rows

    def _boosted(self, n_samples: int, categorical=None) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=0.1,
            max_leaf_nodes=31,
            min_samples_leaf=min(20, max(5, n_samples // 20)),
            categorical_features=categorical,
            loss="absolute_error",
            early_stopping=False,
            random_state=self.random_state,
        )


def size_move(batch, size, new_batch, new_size) -> np.ndarray:
    """Interval stratum of a size move: round(|log2 b'/b| + |log2 s'/s|), unknown input sizes counting 0, capped at 4."""
    with np.errstate(divide="ignore", invalid="ignore"):
        batch_move = np.abs(np.log2(np.asarray(new_batch, float) / np.asarray(batch, float)))
        size_move_ = np.abs(np.log2(np.asarray(new_size, float) / np.asarray(size, float)))
    total = np.nan_to_num(batch_move, nan=0.0) + np.nan_to_num(size_move_, nan=0.0)
    return np.minimum(np.round(total), LARGEST_MOVE).astype(int)
