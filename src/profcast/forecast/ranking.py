"""Rank every target instance for one anchor profile by predicted step time, with epoch time, price and cost.

``forecast`` asks a loaded job model for every target and returns the ranking as a DataFrame with what
it stands on; the CLI (``forecast.recommend``) and the web page show it through ``forecast.report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profcast.catalogue import load_catalogue
from profcast.errors import ProfcastError
from profcast.forecast import sizes
from profcast.jobmodel.measurement import forecast_warnings
from profcast.jobmodel.memory_fit import add_ranking_fit
from profcast.jobmodel.requests import (
    TARGET_INSTANCE,
    TARGET_MEASURED,
    WHATIF_BATCHSIZE,
    WHATIF_INPUT_SIZE,
    checked_anchor_profiles,
    model_op_columns,
    unknown_columns,
)
from profcast.regressors.whatif import input_size as size_of
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY, op_columns
from profcast.vocabulary import to_canonical, unmapped_note

DEFAULT_DATASET_SIZE = 50_000


def in_model_vocabulary(model, profile: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The profile mapped to the op vocabulary the model was trained in (profcast.vocabulary), as the
    served model would map it, and a note naming the op names that fell into 'other' with their share."""
    try:
        mapping = getattr(model.get_raw_model(), "vocabulary", None)
    except (NotImplementedError, AttributeError):  # not a profcast job model: nothing to map
        mapping = None
    if mapping is None:
        return profile, []

    mapped, unmapped = to_canonical(profile, mapping)
    note = unmapped_note(unmapped)
    return mapped, [note] if note else []


def predict_targets(
    model, profile: pd.DataFrame, anchor: str, sizes: dict | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Predicted rows per target for a one-row profile, and the profile columns the model ignores.

    ``sizes`` (request columns such as batchsize, dataset, whatif_batchsize) ask for a what-if.
    """
    from mlflow.exceptions import MlflowException  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    schema = model.metadata.get_input_schema()
    op_columns = model_op_columns(schema)
    ignored = unknown_columns(profile.columns, op_columns)
    try:
        checked = checked_anchor_profiles(profile, op_columns, anchor)
    except ProfcastError as error:
        raise ProfcastError(f"profile: {error}") from None
    if PEAK_MEMORY in profile and PEAK_MEMORY in schema.input_names():  # the served model answers whether it fits
        checked[PEAK_MEMORY] = profile[PEAK_MEMORY].to_numpy(float)
    if sizes:
        if WHATIF_BATCHSIZE not in schema.input_names():
            raise ProfcastError(
                "this model was logged before what-ifs existed; retrain it (profcast train) for --batchsize/--input-size forecasts"
            )
        checked = checked.assign(**{column: [value] for column, value in sizes.items()})
    try:
        return model.predict(checked), ignored
    except MlflowException as error:  # the job model's one-line answer to a request it refuses
        raise ProfcastError(f"profile: {error.message}") from None


def recommendation_table(
    predicted: pd.DataFrame,
    anchor: str,
    measured_latency: float | None,
    batchsize: int | None,
    dataset_size: int,
    catalogue: dict,
) -> pd.DataFrame:
    """One row per instance (targets predicted, the anchor measured when known), fastest first."""

    if BATCH_LATENCY not in predicted:
        raise ProfcastError("this model does not predict batch_latency (its training data had none); nothing to rank")
    low, high = (
        predicted[f"{BATCH_LATENCY}_{end}"] if f"{BATCH_LATENCY}_{end}" in predicted else [np.nan] * len(predicted)
        for end in ("low", "high")
    )
    measured_target = predicted[TARGET_MEASURED] if TARGET_MEASURED in predicted else [True] * len(predicted)
    rows = [
        {
            "instance": target,
            "batch_latency_s": latency,
            "low_s": lo,
            "high_s": hi,
            "source": "predicted",
            "gpu_measured": bool(measured),  # False: a GPU nobody measured, forecast from its figures
        }
        for target, latency, lo, hi, measured in zip(
            predicted[TARGET_INSTANCE], predicted[BATCH_LATENCY], low, high, measured_target
        )
    ]
    if measured_latency is not None:
        rows.append(
            {
                "instance": anchor,
                "batch_latency_s": measured_latency,
                "low_s": np.nan,
                "high_s": np.nan,
                "source": "anchor, measured",
                "gpu_measured": True,
            }
        )
    table = pd.DataFrame(rows).astype({"batch_latency_s": float, "low_s": float, "high_s": float})
    steps = math.ceil(dataset_size / batchsize) if batchsize else np.nan
    table["epoch_s"] = table["batch_latency_s"] * steps
    table["gpu"] = [str((catalogue.get(name) or {}).get("gpu") or "-") for name in table["instance"]]
    table["vcpus"] = [(catalogue.get(name) or {}).get("vcpus") for name in table["instance"]]
    table["price_per_hour"] = [(catalogue.get(name) or {}).get("price_per_hour", np.nan) for name in table["instance"]]
    table["cost_per_epoch"] = table["epoch_s"] / 3600 * table["price_per_hour"]
    table["speedup"] = measured_latency / table["batch_latency_s"] if measured_latency else np.nan

    return (
        add_ranking_fit(table, predicted)
        .sort_values(["does_not_fit", "batch_latency_s"], kind="stable")
        .reset_index(drop=True)
    )


def whatif_request(anchor_profile, batchsize: int | None, input_size: int | None) -> tuple[dict, list[str]]:
    """The request columns of a --batchsize / --input-size what-if ({} when the forecast is at the profiled size), and notes.

    A profile without a batch size takes --batchsize as its own (epoch time only), as before what-ifs.
    """

    sizes, notes = {}, []
    if batchsize and anchor_profile.batchsize and batchsize != anchor_profile.batchsize:
        sizes.update({"batchsize": anchor_profile.batchsize, WHATIF_BATCHSIZE: float(batchsize)})
        notes.append(
            f"what-if: forecast at batch size {batchsize} from the profile's {anchor_profile.batchsize} "
            "(learned growth; the anchor's measured latency is at the profiled size and is not ranked)"
        )
    profiled_size = size_of(anchor_profile.dataset) if anchor_profile.dataset else float("nan")
    if input_size is not None:
        if not math.isfinite(profiled_size):
            raise ProfcastError(
                f"--input-size {input_size}: the profile does not say its input size; pass a training-table "
                "row whose 'dataset' carries it (e.g. 64dataset) or a run file named <dataset>-<model>-<optimizer>-<batch>"
            )
        if input_size != profiled_size:
            sizes.update({"dataset": anchor_profile.dataset, WHATIF_INPUT_SIZE: float(input_size)})
            notes.append(
                f"what-if: forecast at input size {input_size} from the profile's {profiled_size:g} (learned growth)"
            )
    if sizes and "batchsize" not in sizes and anchor_profile.batchsize:
        sizes["batchsize"] = anchor_profile.batchsize
    if sizes and "dataset" not in sizes and anchor_profile.dataset:
        sizes["dataset"] = anchor_profile.dataset
    return sizes, notes


@dataclass
class Forecast:
    """One ranking and what it stands on: what ``recommend`` prints and the web page shows."""

    table: pd.DataFrame  # recommendation_table: one row per instance, fastest first
    anchor: str
    profile_kind: str  # which accepted format the profile was (AnchorProfile.kind)
    n_ops: int  # op columns in the profile
    model_uri: str
    metadata: dict  # the job model's metadata: anchor, regressor, training data
    epoch: str  # "50,000 samples / batch 64 = 782 steps", or "n/a" without a batch size
    notes: list[str]
    sizes: dict  # the what-if request columns ({} at the profiled size)


def check_sizes(dataset_size: int, batchsize: int | None, input_size: int | None) -> None:
    """Refuse a samples-per-epoch, batch or input size that is not positive or past its bound, naming the option."""
    sizes.check_sizes(dataset_size, batchsize, input_size)  # one rule for the CLI and the page


def forecast(
    model,
    uri: str,
    anchor_profile,
    anchor: str,
    batchsize: int | None = None,
    input_size: int | None = None,
    dataset_size: int = DEFAULT_DATASET_SIZE,
) -> Forecast:
    """Rank every target for one anchor profile with a loaded job model, at the profiled or a what-if size."""
    sizes, whatif_notes = whatif_request(anchor_profile, batchsize, input_size)
    profile, vocabulary_notes = in_model_vocabulary(
        model, anchor_profile.profile
    )  # a canonical model: mapped as in training
    predicted, ignored = predict_targets(model, profile, anchor, sizes)
    notes = list(anchor_profile.notes) + whatif_notes + vocabulary_notes
    batchsize = batchsize or anchor_profile.batchsize
    if batchsize is None:
        notes.append("no batch size in the profile: pass --batchsize N for epoch time and cost")
    if ignored:
        shown = ", ".join(map(str, ignored[:8])) + (f" and {len(ignored) - 8} more" if len(ignored) > 8 else "")
        notes.append(f"ignored {len(ignored)} column(s) never seen in training: {shown}")
    measured = anchor_profile.measured_latency if not sizes else None  # measured at another size than the forecast
    if measured is None and not sizes:
        notes.append(f"the profile has no measured batch_latency on {anchor}: speed-up is n/a")
    table = recommendation_table(predicted, anchor, measured, batchsize, dataset_size, load_catalogue())
    epoch = (
        f"{dataset_size:,} samples / batch {batchsize} = {math.ceil(dataset_size / batchsize):,} steps"
        if batchsize
        else "n/a"
    )
    if not table["gpu_measured"].all():
        notes.append(
            "unmeasured GPU(s) "
            + ", ".join(table.loc[~table["gpu_measured"], "instance"])
            + ": no measurement of them; forecast from their figures by the per-call model; their 80% interval "
            "adds its leave-one-GPU-out errors to the model's own (docs/new-gpu.md)"
        )
    notes += forecast_warnings((model.metadata.metadata or {}).get("measurement"), table)
    if f"{BATCH_LATENCY}_low" in predicted:
        notes.append(
            "80% interval: the 10%-90% quantiles of the errors this model made on held-out models (docs/whatif.md)"
        )
    return Forecast(
        table=table,
        anchor=anchor,
        profile_kind=anchor_profile.kind,
        n_ops=len(op_columns(anchor_profile.profile.columns)),
        model_uri=uri,
        metadata=dict(model.metadata.metadata or {}),
        epoch=epoch,
        notes=notes,
        sizes=sizes,
    )
