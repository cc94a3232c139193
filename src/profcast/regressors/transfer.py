"""TransferRegressor: predict a target instance's op times as the anchor's times x a learned per-op ratio.

One gradient-boosted model serves every op. Each (run, op) cell the anchor ran becomes one training
row (long format) whose target is log(target time / anchor time), described by the op's identity
(a categorical feature), its size on the anchor (log time, log share of the run) and the anchor run
as a whole (log total, log time of every op). Why this shape:

- GPU speed-ups differ by op and, within an op, by kernel size: small kernels are launch-bound and
  gain little on a faster GPU, big ones gain most. Anchor time and share carry that size; the whole
  anchor vector tells the model what kind of network and batch it is looking at.
- A ratio model extrapolates to held-out networks (times scale with them) where a model of raw
  times cannot, and one model over all ops shares what rare ops alone could not learn.
- The loss is absolute error on the log ratio: its median fits typical cells, and a few erratic
  cells (host send/receive) do not drag every other prediction.
- Zeros stay structural: an op the anchor did not run predicts exactly 0. A classifier on the same
  features predicts 0 for cells that usually vanish on the target (ops that run only sometimes).
- Batch latency averages two models of log(target latency / anchor latency), in log space. A direct
  one reads the anchor's op shares, log total and log latency. A busy-time one reads a few physical
  quantities: the anchor's latency, busy, idle and host times and its latency over busy time, and
  the target's busy time (learned
  on the measured one, applied to the one this regressor predicts): a step takes about as long as
  the device is busy, plus whatever the host adds. A fallback model predicts log target latency from
  the op shares and total alone when a profile comes without its latency.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from profcast.regressors.profile_regressor import start_profile_fit
from profcast.schema import BATCH_LATENCY, aligned_ops, as_profile, op_part

# HistGradientBoosting accepts at most 255 categories; one code is kept for "op not learned".
MAX_OP_CODES = 254
# Fewest training samples a boosted model's leaf may hold, however small the table.
SMALLEST_LEAF = 5


def time_kinds(op_columns: list[str]) -> dict[str, np.ndarray]:
    """Masks over `op_columns` splitting a run's time: device busy, device idle, other busy, other idle.

    Idle ops are named `*IDLE`; tables without `Device_` names count every non-idle op as device busy.
    """
    idle = np.array([name.upper().endswith("IDLE") for name in op_columns], dtype=bool)
    device = np.array([name.startswith("Device_") for name in op_columns], dtype=bool)
    if not (device & ~idle).any():
        device = ~idle
    return {
        "busy": device & ~idle,
        "device_idle": device & idle,
        "other": ~device & ~idle,
        "other_idle": ~device & idle,
    }


def busy_time_features(
    anchor_ops: np.ndarray, anchor_latency: np.ndarray, target_ops: np.ndarray, kinds: dict
) -> np.ndarray:
    """Per run: log anchor latency, log1p of the anchor's busy, device, device-idle, other and
    other-idle time, log anchor latency minus log busy time (how much of a step is not busy), then
    log1p of the target's busy time and its difference to the anchor's."""
    anchor_busy = np.log1p(anchor_ops[:, kinds["busy"]].sum(axis=1))
    target_busy = np.log1p(target_ops[:, kinds["busy"]].sum(axis=1))
    return np.column_stack(
        [
            np.log(anchor_latency),
            anchor_busy,
            np.log1p(anchor_ops[:, kinds["busy"] | kinds["device_idle"]].sum(axis=1)),
            *(np.log1p(anchor_ops[:, kinds[kind]].sum(axis=1)) for kind in ("device_idle", "other", "other_idle")),
            np.log(anchor_latency) - anchor_busy,
            target_busy,
            target_busy - anchor_busy,
        ]
    )


class TransferRegressor(RegressorMixin, BaseEstimator):
    """Anchor profile -> target profile (+ batch latency) via one boosted per-op log-ratio model.

    Follows the profile contract of profcast.regressors.profile_regressor: ``fit(anchor_profile, target_profile)`` with
    DataFrames whose op columns match (``batch_latency`` optional on either side) and
    ``predict(anchor_profile)`` returning one column per ``output_columns_`` entry.

    Attributes
    ----------
    op_columns_ : list of str
        The op columns, in order (input and output).
    op_codes_ : ndarray of int
        The categorical code of each op (``unknown_code_`` for ops without a training ratio).
    ratio_model_ : HistGradientBoostingRegressor
        log(target time / anchor time) of a cell from its op code and size features.
    vanish_model_ : HistGradientBoostingClassifier or None
        Whether a cell the anchor ran is 0 on the target; None when no cell vanished in training.
    latency_model_, busy_latency_model_, latency_fallback_model_ : HistGradientBoostingRegressor or None
        The direct and busy-time latency-ratio models (need the anchor's latency) and the
        fallback for profiles without one; None when the training target had no latency.
    output_columns_ : list of str
        ``op_columns_`` plus ``batch_latency`` when it is predicted.
    """

    _parameter_constraints: dict = {
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left")],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "max_training_cells": [Interval(Integral, 1, None, closed="left"), None],
        "unknown_op_share": [Interval(Real, 0, 1, closed="both")],
        "vanish_threshold": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        max_iter: int = 150,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 20,
        max_training_cells: int | None = 10000,
        unknown_op_share: float = 0.05,
        vanish_threshold: float = 0.5,
        random_state: int = 0,
    ):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.max_training_cells = max_training_cells
        self.unknown_op_share = unknown_op_share
        self.vanish_threshold = vanish_threshold
        self.random_state = random_state

    def fit(self, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame):
        """Learn the per-op ratio model (and the latency models when the target has a latency)."""
        anchor_profile, target_profile = start_profile_fit(self, anchor_profile, target_profile)
        anchor_ops_present = list(op_part(anchor_profile).columns)
        if sorted(anchor_ops_present) != sorted(self.op_columns_):
            differing = sorted(set(anchor_ops_present) ^ set(self.op_columns_))
            raise ValueError(
                f"anchor and target profiles must have the same op columns; differing: {', '.join(differing)}"
            )
        if len(anchor_profile) != len(target_profile):
            raise ValueError(
                f"anchor ({len(anchor_profile)} rows) and target ({len(target_profile)} rows) profiles must be row-aligned"
            )
        anchor_ops = aligned_ops(anchor_profile, self.op_columns_)
        target_ops = target_profile[self.op_columns_].to_numpy(dtype=float)
        self.n_features_in_ = len(self.op_columns_)
        rng = np.random.default_rng(self.random_state)
        self._fit_cell_models(anchor_ops, target_ops, rng)
        self.time_kinds_ = time_kinds(self.op_columns_)
        self._fit_latency_models(anchor_profile, target_profile, anchor_ops, target_ops)
        has_latency = self.latency_fallback_model_ is not None
        self.output_columns_ = self.op_columns_ + ([BATCH_LATENCY] if has_latency else [])
        return self

    def _fit_cell_models(self, anchor_ops: np.ndarray, target_ops: np.ndarray, rng: np.random.Generator) -> None:
        """The ratio model over cells both sides ran, and the vanish classifier over cells the anchor ran."""
        rows, ops = np.nonzero(anchor_ops > 0)
        ran_on_target = target_ops[rows, ops] > 0
        self.op_codes_ = self._learn_op_codes(ops[ran_on_target])
        cells = self._cell_features(anchor_ops, rows, ops)
        codes = self.op_codes_[ops]
        # Some cells pose as an unlearned op, so ops never seen in training get a sensible ratio.
        codes = np.where(rng.random(len(codes)) < self.unknown_op_share, self.unknown_code_, codes)
        features = np.column_stack([codes, cells])

        ratio_cells = np.flatnonzero(ran_on_target)
        if ratio_cells.size == 0:
            raise ValueError(
                "no op ran on both the anchor and the target in the training rows; nothing to learn a ratio from"
            )
        if self.max_training_cells and ratio_cells.size > self.max_training_cells:
            ratio_cells = rng.choice(ratio_cells, self.max_training_cells, replace=False)
        log_ratio = np.log(target_ops[rows, ops][ratio_cells] / anchor_ops[rows, ops][ratio_cells])
        self.ratio_model_ = self.boosted_model(
            HistGradientBoostingRegressor, ratio_cells.size, [0], loss="absolute_error"
        ).fit(features[ratio_cells], log_ratio)

        self.vanish_model_ = None
        if 0 < ran_on_target.sum() < len(ran_on_target):
            sample = np.arange(len(rows))
            if self.max_training_cells and sample.size > self.max_training_cells:
                sample = rng.choice(sample, self.max_training_cells, replace=False)
            self.vanish_model_ = self.boosted_model(HistGradientBoostingClassifier, sample.size, [0]).fit(
                features[sample], ~ran_on_target[sample]
            )

    def _fit_latency_models(
        self, anchor_profile: pd.DataFrame, target_profile: pd.DataFrame, anchor_ops: np.ndarray, target_ops: np.ndarray
    ) -> None:
        """The fallback latency model, and with the anchor's latency the direct and busy-time ratio models."""
        self.latency_model_ = self.latency_fallback_model_ = self.busy_latency_model_ = None
        if BATCH_LATENCY not in target_profile:
            return
        target_latency = target_profile[BATCH_LATENCY].to_numpy(dtype=float)
        run_features = self._latency_features(anchor_ops)
        usable = np.isfinite(target_latency) & (target_latency > 0)
        if usable.any():
            self.latency_fallback_model_ = self.boosted_model(HistGradientBoostingRegressor, usable.sum()).fit(
                run_features[usable], np.log(target_latency[usable])
            )
        if BATCH_LATENCY not in anchor_profile:
            return
        anchor_latency = anchor_profile[BATCH_LATENCY].to_numpy(dtype=float)
        usable &= np.isfinite(anchor_latency) & (anchor_latency > 0)
        if not usable.any():
            return
        with_latency = np.column_stack([np.log(anchor_latency[usable]), run_features[usable]])
        latency_ratio = np.log(target_latency[usable] / anchor_latency[usable])
        self.latency_model_ = self.boosted_model(HistGradientBoostingRegressor, usable.sum()).fit(
            with_latency, latency_ratio
        )
        busy_features = busy_time_features(
            anchor_ops[usable], anchor_latency[usable], target_ops[usable], self.time_kinds_
        )
        self.busy_latency_model_ = self.boosted_model(
            HistGradientBoostingRegressor, usable.sum(), loss="absolute_error"
        ).fit(busy_features, latency_ratio)

    def predict(self, anchor_profile: pd.DataFrame) -> np.ndarray:
        """Predicted target op times (and batch latency) for each anchor run, in output_columns_ order.

        Op columns the profile lacks count as 0; columns never seen in training are ignored with a
        warning that names them (see ``ignored_columns``).
        """
        check_is_fitted(self)
        anchor_profile = as_profile(anchor_profile)
        ignored = self.ignored_columns(anchor_profile)
        if ignored:
            warnings.warn(
                f"TransferRegressor ignores column(s) not seen in training: {', '.join(ignored)}",
                UserWarning,
                stacklevel=2,
            )
        anchor_ops = aligned_ops(anchor_profile, self.op_columns_)
        predicted = np.zeros_like(anchor_ops)
        rows, ops = np.nonzero(anchor_ops > 0)
        if rows.size:
            features = np.column_stack([self.op_codes_[ops], self._cell_features(anchor_ops, rows, ops)])
            predicted[rows, ops] = anchor_ops[rows, ops] * np.exp(self.ratio_model_.predict(features))
            if self.vanish_model_ is not None:
                vanishes = self.vanish_model_.predict_proba(features)[:, 1] > self.vanish_threshold
                predicted[rows[vanishes], ops[vanishes]] = 0.0
        if self.latency_fallback_model_ is None:
            return predicted
        return np.column_stack([predicted, self._predict_latency(anchor_profile, anchor_ops, predicted)])

    def ignored_columns(self, anchor_profile: pd.DataFrame) -> list[str]:
        """Columns of `anchor_profile` this model never saw in training (they do not affect predictions)."""
        known = set(self.op_columns_) | {BATCH_LATENCY}
        return [c for c in anchor_profile.columns if c not in known]

    def _predict_latency(
        self, anchor_profile: pd.DataFrame, anchor_ops: np.ndarray, predicted_ops: np.ndarray
    ) -> np.ndarray:
        run_features = self._latency_features(anchor_ops)
        latency = np.exp(self.latency_fallback_model_.predict(run_features))
        if self.latency_model_ is not None and BATCH_LATENCY in anchor_profile:
            anchor_latency = anchor_profile[BATCH_LATENCY].to_numpy(dtype=float)
            known = np.isfinite(anchor_latency) & (anchor_latency > 0)
            if known.any():
                with_latency = np.column_stack([np.log(anchor_latency[known]), run_features[known]])
                log_ratio = self.latency_model_.predict(with_latency)
                busy_features = busy_time_features(
                    anchor_ops[known], anchor_latency[known], predicted_ops[known], self.time_kinds_
                )
                log_ratio = (log_ratio + self.busy_latency_model_.predict(busy_features)) / 2
                latency[known] = anchor_latency[known] * np.exp(log_ratio)
        return latency

    def _learn_op_codes(self, ops_with_ratio: np.ndarray) -> np.ndarray:
        """One category per op with a training ratio (the most frequent, up to the category limit)."""
        counts = np.bincount(ops_with_ratio, minlength=len(self.op_columns_))
        ranked = [op for op in np.argsort(-counts, kind="stable") if counts[op] > 0][:MAX_OP_CODES]
        self.unknown_code_ = len(ranked)
        codes = np.full(len(self.op_columns_), self.unknown_code_)
        codes[ranked] = np.arange(len(ranked))
        return codes

    def _cell_features(self, anchor_ops: np.ndarray, rows: np.ndarray, ops: np.ndarray) -> np.ndarray:
        """Per (run, op) cell: log anchor time, log share of the run, then the anchor run's features."""
        run_total = anchor_ops.sum(axis=1)
        cell_time = anchor_ops[rows, ops]
        return np.column_stack(
            [np.log(cell_time), np.log(cell_time / run_total[rows]), self._run_features(anchor_ops)[rows]]
        )

    def _run_features(self, anchor_ops: np.ndarray) -> np.ndarray:
        """Per anchor run: log total time and log(1 + time) of every op (what network, what batch)."""
        return np.column_stack([np.log1p(anchor_ops.sum(axis=1)), np.log1p(anchor_ops)])

    def _latency_features(self, anchor_ops: np.ndarray) -> np.ndarray:
        """Per anchor run: log total time and each op's share of it (where the step's time goes)."""
        run_total = anchor_ops.sum(axis=1, keepdims=True)
        return np.column_stack([np.log1p(run_total), anchor_ops / np.maximum(run_total, 1e-12)])

    def boosted_model(self, kind, n_samples: int, categorical_features=None, **options):
        """A boosted model with this regressor's hyper-parameters, for `n_samples` training samples.

        The leaf minimum shrinks to 5% of the samples (at least SMALLEST_LEAF) on small tables, so a
        few dozen runs can still split on the op identity.
        """
        return kind(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=min(self.min_samples_leaf, max(SMALLEST_LEAF, int(n_samples) // 20)),
            categorical_features=categorical_features,
            early_stopping=False,
            random_state=self.random_state,
            **options,
        )
