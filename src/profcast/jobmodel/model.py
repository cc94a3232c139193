"""The job model: every target's fitted regressor behind one ``predict``, with named columns.

It takes anchor profiles (one row per profiled run) and returns one row per (input row, target
instance): the predicted op vector, batch latency and vector total, and the forecast columns
(intervals, what-ifs). It knows nothing of MLflow: a bad request is a ``ProfcastError``, which the
serving layer (``profcast.serve.loader``) answers with HTTP 400. ``profcast.jobmodel.storage`` writes
and reads it as skops files without pickle.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from profcast.errors import ProfcastError, first_line
from profcast.jobmodel.answer_format import requested_shape, shaped_answer
from profcast.jobmodel.forecast_columns import add_forecast_columns, added_columns
from profcast.jobmodel.memory_fit import ANSWER_COLUMNS, add_fit_columns, json_safe
from profcast.jobmodel.one_thread import OpenMPLimit
from profcast.jobmodel.request_limits import Deadline, check_request_rows, served
from profcast.jobmodel.requests import (
    DESCRIPTIVE_COLUMNS,
    INPUT_ROW,
    PREDICTED_TOTAL,
    SIZE_COLUMNS,
    TARGET_INSTANCE,
    TARGET_MEASURED,
    TRAINED_ON,
    checked_anchor_profiles,
    checked_peak_memory,
    requested_targets,
    unknown_columns,
)
from profcast.jobmodel.shared_neighbours import shared_neighbour_groups
from profcast.jobmodel.trained_range import check_in_range, check_op_total_in_range
from profcast.schema import BATCH_LATENCY, op_columns, op_part
from profcast.vocabulary import to_canonical, unmapped_note

log = logging.getLogger(__name__)


class JobModel:
    """Predicts every target instance's profile from an anchor profile, with named columns."""

    def __init__(
        self,
        anchor: str,
        models: dict,
        op_columns: list[str],
        output_op_columns: list[str],
        predicts_latency: bool,
        trained_on: str | None = None,
        extras: dict | None = None,
        interval_quantity: str | None = None,
        trained_range: dict | None = None,
    ):
        self.anchor = anchor
        self.models = models
        self.targets = list(models)
        self.op_columns = op_columns
        self.output_op_columns = output_op_columns
        self.predicts_latency = predicts_latency
        self.trained_on = trained_on  # e.g. "generated data: embedded generated data (...) (fingerprint ...)"
        self.extras = (
            extras or {}
        )  # target -> interval and size what-if (profcast.jobmodel.forecast_extras); empty for older models
        self.interval_quantity = interval_quantity  # batch_latency | predicted_total: what the interval bounds
        self.trained_range = (
            trained_range  # sizes of the training rows: a request far outside is refused (None: older model)
        )
        self._one_thread = OpenMPLimit()
        # Where each model's outputs land in the answer, worked out once instead of per request.
        position = {column: number for number, column in enumerate(output_op_columns)}
        self._layout = {}
        for target, model in models.items():
            outputs = list(model.output_columns_)
            ops = [number for number, column in enumerate(outputs) if column in position]
            self._layout[target] = (
                np.array(ops, dtype=np.intp),
                np.array([position[outputs[n]] for n in ops], dtype=np.intp),
                outputs.index(BATCH_LATENCY) if BATCH_LATENCY in outputs else None,
            )
        self._shared_searches = shared_neighbour_groups(models)  # kNN targets fitted on the same anchor rows
        self.vocabulary = None  # a canonical model's profcast.vocabulary.Mapping: requests are mapped with it
        self.memory = None  # each target's peak-memory carry and device memory (profcast.jobmodel.memory_fit)
        self.unmeasured = {}  # target -> note, for targets forecast from their figures only (never measured)

    def get_raw_model(self):
        """This object (MLflow's PyFuncModel.get_raw_model hands it out: profcast.predict reads the vocabulary)."""
        return self

    def predict(self, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """One row per (request row, target): target_instance, op columns, batch_latency, total.

        ``params={"output": "columns" | "totals"}`` asks for another shape (profcast.jobmodel.answer_format).

        A bad request raises ProfcastError naming the column and row; any other failure is logged with
        its traceback and raised as a one-line ProfcastError, never a stack trace in an answer.
        """
        try:
            shape = requested_shape(params)
            model_input = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            if served():
                check_request_rows(len(model_input), shape)  # before any work
            with self._one_thread():
                return shaped_answer(
                    _finite_answer(self._predict(model_input, Deadline.for_this_request())),
                    shape,
                    self.output_op_columns,
                )
        except ProfcastError:
            raise
        except Exception as error:  # a regressor failing on an input that passed the checks
            log.exception("prediction failed")
            raise ProfcastError(
                f"the model could not predict from this request ({type(error).__name__}: {first_line(error)})"
            ) from None

    def _predict(self, model_input: pd.DataFrame, deadline: Deadline | None = None) -> pd.DataFrame:
        profiles = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        profiles = profiles.reset_index(drop=True)  # error messages count rows from 0
        if self.vocabulary is not None:
            profiles = _in_model_vocabulary(profiles, self.vocabulary, self.anchor)
        ignored = unknown_columns(profiles.columns, self.op_columns)
        if ignored:
            log.warning("ignored column(s) never seen in training: %s", ", ".join(map(str, ignored)))
        anchor_profiles = checked_anchor_profiles(profiles, self.op_columns, self.anchor)
        check_in_range(profiles, self.trained_range)  # before any model runs: no silent extrapolation
        wanted = requested_targets(profiles, self.targets)
        if self.trained_range is not None:  # a whole profile far outside the training profiles: no silent extrapolation
            check_op_total_in_range(op_part(anchor_profiles).sum(axis=1).to_numpy(), self.trained_range)
        every_target = bool(wanted.isna().all())
        shared = {}
        if every_target:  # a request for a subset of targets takes the per-target path
            for group in self._shared_searches:
                shared.update(group.predict(anchor_profiles))
        parts = []
        for rank, target in enumerate(self.targets):
            if deadline is not None:
                deadline.check()  # the server gave up on this request: stop instead of computing on
            if every_target:
                rows, request = np.arange(len(anchor_profiles)), anchor_profiles
            else:
                rows = np.flatnonzero((wanted.isna() | (wanted == target)).to_numpy())
                request = anchor_profiles.iloc[rows]
            if rows.size:
                parts.append((rank, rows, self._predict_target(target, request, shared.get(target))))

        answer = add_forecast_columns(self._answer(parts), profiles, anchor_profiles, self)
        return add_fit_columns(answer, checked_peak_memory(profiles), answer[INPUT_ROW].to_numpy(), self.memory)

    def _predict_target(
        self, target: str, anchor_profiles: pd.DataFrame, raw=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This target's op times in ``output_op_columns`` order, its batch latency (NaN if none), its totals.

        ``raw`` is the target model's prediction when it was already made (a shared neighbour search).
        """
        if raw is None:
            raw = self.models[target].predict(anchor_profiles)
        raw = np.asarray(raw, dtype=float).reshape(len(anchor_profiles), -1)
        source, destination, latency_at = self._layout[target]
        # An op this target's model lacks is 0; op times cannot be negative (evaluation clips them too).
        # Column-major like the pandas frame the totals were always summed from: numpy adds up a
        # row in another order (last bits differ) when the row is contiguous in memory.
        ops = np.zeros((len(raw), len(self.output_op_columns)), order="F")
        ops[:, destination] = raw[:, source]
        np.clip(ops, 0.0, None, out=ops)
        latency = raw[:, latency_at] if latency_at is not None else np.full(len(raw), np.nan)
        return ops, latency, ops.sum(axis=1)

    def _answer(self, parts: list) -> pd.DataFrame:
        """One frame ordered by request row, then target, built from numpy blocks in one go."""
        ranks = np.concatenate([np.full(rows.size, rank) for rank, rows, _ in parts])
        rows = np.concatenate([rows for _, rows, _ in parts]).astype("int64")
        ops, latency, total = (np.concatenate([predicted[part] for _, _, predicted in parts]) for part in range(3))
        order = np.lexsort((ranks, rows))
        ops, latency, total, rows, ranks = ops[order], latency[order], total[order], rows[order], ranks[order]
        frame = pd.DataFrame(ops, columns=self.output_op_columns)
        frame.insert(0, INPUT_ROW, rows)
        frame.insert(1, TARGET_INSTANCE, np.array(self.targets, dtype=object)[ranks])
        if self.predicts_latency:
            frame[BATCH_LATENCY] = latency
        frame[PREDICTED_TOTAL] = total
        if self.trained_on is not None:
            frame[TRAINED_ON] = self.trained_on
        if self.unmeasured:  # such a target's rows say so: its "training data" is the per-call model's forecasts
            measured = ~frame[TARGET_INSTANCE].isin(list(self.unmeasured)).to_numpy()
            frame[TARGET_MEASURED] = measured
            if self.trained_on is not None:
                notes = frame[TARGET_INSTANCE].map(self.unmeasured).to_numpy()
                frame[TRAINED_ON] = np.where(measured, self.trained_on, [f"{n}; {self.trained_on}" for n in notes])
        return frame


def _in_model_vocabulary(profiles: pd.DataFrame, mapping, anchor: str) -> pd.DataFrame:
    """A request's op columns mapped as in training (profcast.vocabulary); its values checked first, so a
    bad cell is named by the request's own column."""

    keep = {*DESCRIPTIVE_COLUMNS, TARGET_INSTANCE, *SIZE_COLUMNS, INPUT_ROW, TRAINED_ON}
    native = [column for column in op_columns(profiles.columns) if column not in keep]
    if native:
        checked_anchor_profiles(profiles, native, anchor)
    mapped, unmapped = to_canonical(profiles, mapping, keep=keep)
    if not unmapped.empty:
        log.warning("%s", unmapped_note(unmapped))
    return mapped


def _finite_answer(predicted: pd.DataFrame) -> pd.DataFrame:
    """Refuse an answer JSON cannot carry: a non-finite op time is a bad request; a latency not predicted is null."""

    nullable = [BATCH_LATENCY, *added_columns(predicted)]  # may be unknown: null, not an error
    numbers = predicted.drop(
        columns=[INPUT_ROW, TARGET_INSTANCE, TRAINED_ON, TARGET_MEASURED, *nullable, *ANSWER_COLUMNS], errors="ignore"
    ).to_numpy(dtype=float)
    bad = ~np.isfinite(numbers).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ProfcastError(
            f"the prediction for request row {predicted[INPUT_ROW].iloc[row]} on {predicted[TARGET_INSTANCE].iloc[row]} is not a "
            "finite number; the request's op times are far outside what the model was trained on"
        )
    for column in nullable:
        if column in predicted and not np.isfinite(predicted[column].to_numpy(dtype=float)).all():
            values = predicted[column].astype(object)
            predicted[column] = values.where(np.isfinite(predicted[column].to_numpy(dtype=float)), None)
    return json_safe(predicted)


def use_one_thread(estimator) -> None:
    """Set ``n_jobs=1`` on ``estimator`` and every estimator inside it (forests, KNN, wrapped models).

    A served request is a few rows: starting a thread pool per call costs far more than the
    prediction. With one thread a forest also sums its trees in their fixed order on every call.
    """

    seen, pending = set(), [estimator]
    while pending:
        part = pending.pop()
        if id(part) in seen or not isinstance(part, BaseEstimator):
            continue
        seen.add(id(part))
        if "n_jobs" in vars(part):
            part.n_jobs = 1
        pending.extend(value for value in vars(part).values() if isinstance(value, BaseEstimator))
