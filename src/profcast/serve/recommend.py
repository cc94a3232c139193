"""Rank cloud instances for a training job by predicted step time, with epoch time, price and cost.

``recommend`` is everything ``python -m profcast.predict`` does: read the profile, load the job model
(by default the anchor's champion), rank every target (``forecast``, a DataFrame with what it stands
on, which the web page shows too) and format the ranking as text (and a plot).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.config import CONF_DIR
from profcast.errors import ProfcastError
from profcast.schema import BATCH_LATENCY, PEAK_MEMORY, op_columns
from profcast.serve.profile_input import read_anchor_profile

INSTANCE_CATALOGUE = CONF_DIR / "instances.yaml"
GPU_CATALOGUE = CONF_DIR / "gpus.yaml"  # NeuSight's GPUs: figures, and price where one cloud instance has exactly one
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
    from profcast.vocabulary import to_canonical, unmapped_note

    mapped, unmapped = to_canonical(profile, mapping)
    note = unmapped_note(unmapped)
    return mapped, [note] if note else []


def predict_targets(
    model, profile: pd.DataFrame, anchor: str, sizes: dict | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Predicted rows per target for a one-row profile, and the profile columns the model ignores.

    ``sizes`` (request columns such as batchsize, dataset, whatif_batchsize) ask for a what-if.
    """
    from mlflow.exceptions import MlflowException

    from profcast.jobmodel.requests import WHATIF_BATCHSIZE, checked_anchor_profiles, model_op_columns, unknown_columns

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
                "this model was logged before what-ifs existed; retrain it (python -m profcast.train) for --batchsize/--input-size forecasts"
            )
        checked = checked.assign(**{column: [value] for column, value in sizes.items()})
    try:
        return model.predict(checked), ignored
    except MlflowException as error:  # the job model's one-line answer to a request it refuses
        raise ProfcastError(f"profile: {error.message}") from None


def load_catalogue(path=INSTANCE_CATALOGUE, gpu_path=GPU_CATALOGUE) -> dict[str, dict]:
    """Instance name -> {gpu, vcpus, price_per_hour, memory_gb} from conf/instances.yaml, plus the GPUs of
    conf/gpus.yaml (NeuSight's, keyed by their instance_name) priced as their one-GPU cloud instance."""
    from omegaconf import OmegaConf

    catalogue = dict(OmegaConf.to_container(OmegaConf.load(path))["instances"])
    if gpu_path is not None and Path(gpu_path).is_file():
        for name, gpu in OmegaConf.to_container(OmegaConf.load(gpu_path))["gpus"].items():
            shown = f"{gpu['gpu']} ({gpu['cloud_instance']})" if gpu.get("cloud_instance") else gpu["gpu"]
            price = gpu.get("price_per_hour")
            catalogue.setdefault(
                name,
                {
                    "gpu": shown,
                    "vcpus": gpu.get("vcpus"),
                    "price_per_hour": float("nan") if price is None else price,
                    "memory_gb": gpu.get("memory_gb"),
                },
            )
    return catalogue


def recommendation_table(
    predicted: pd.DataFrame,
    anchor: str,
    measured_latency: float | None,
    batchsize: int | None,
    dataset_size: int,
    catalogue: dict,
) -> pd.DataFrame:
    """One row per instance (targets predicted, the anchor measured when known), fastest first."""
    from profcast.jobmodel.requests import TARGET_INSTANCE, TARGET_MEASURED

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
            "source": "predicted" if measured else UNMEASURED_SOURCE,
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
    from profcast.jobmodel.memory_fit import add_ranking_fit

    return (
        add_ranking_fit(table, predicted)
        .sort_values(["does_not_fit", "batch_latency_s"], kind="stable")
        .reset_index(drop=True)
    )


# A target nobody measured: forecast from its figures by the per-call model (pipeline/unmeasured_target).
UNMEASURED_SOURCE = "predicted, unmeasured GPU"
SOURCE_CELLS = {"anchor, measured": "(anchor, measured)", UNMEASURED_SOURCE: "(unmeasured GPU: from its figures)"}
TABLE_HEADER = [
    "rank",
    "instance",
    "GPU",
    "vCPUs",
    "batch latency",
    "80% interval (ms)",
    "epoch time",
    "$/hour",
    "$/epoch",
    "speed-up",
    "memory",
    "",
]
RIGHT_ALIGNED = {0, 3, 4, 5, 6, 7, 8, 9}  # the header's numeric columns
MEMORY_CELL = TABLE_HEADER.index("memory")
DOES_NOT_FIT_LINE = "-- does not fit in the device's memory (forecast peak above it):"


def table_cells(table: pd.DataFrame) -> list[list[str]]:
    """The ranking's cells as the CLI prints them, one list per row in rank order (header: TABLE_HEADER)."""
    return [
        [
            str(rank),
            row.instance,
            row.gpu,
            "-" if row.vcpus is None or pd.isna(row.vcpus) else str(int(row.vcpus)),
            latency_text(row.batch_latency_s),
            _interval(row.low_s, row.high_s),
            _duration(row.epoch_s),
            _money(row.price_per_hour, 3),
            _money(row.cost_per_epoch, 4),
            "n/a" if np.isnan(row.speedup) else f"{row.speedup:.2f}x",
            getattr(row, "memory", "-"),
            SOURCE_CELLS.get(row.source, ""),
        ]
        for rank, row in enumerate(table.itertuples(), start=1)
    ]


def shown_header_and_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The header and cells the CLI and the web page show: the memory column only where some row has a
    fit to tell (a model or profile without peak memory gives none)."""
    header, cells = list(TABLE_HEADER), table_cells(table)
    if "memory" in table and bool((table["memory"] != "-").any()):
        return header, cells
    drop = lambda line: line[:MEMORY_CELL] + line[MEMORY_CELL + 1 :]  # noqa: E731
    return drop(header), [drop(line) for line in cells]


def format_table(table: pd.DataFrame) -> str:
    """The ranking as aligned text columns."""
    header, cells = shown_header_and_cells(table)
    lines = [header, *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    ]
    if "does_not_fit" in table and table["does_not_fit"].any():  # jobs that do not fit: apart, under a line
        first = int(np.flatnonzero(table["does_not_fit"].to_numpy(dtype=bool))[0])
        text.insert(1 + first, DOES_NOT_FIT_LINE)
    return "\n".join(text)


def latency_text(seconds: float) -> str:
    """A step time as the table shows it, in milliseconds."""
    return f"{seconds * 1000:.2f} ms"


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _interval(low: float, high: float) -> str:
    # No unit in the cell: "N ms" marks the point forecast alone.
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"{low * 1000:.2f}-{high * 1000:.2f}"


def _money(value: float, digits: int) -> str:
    return "n/a" if not np.isfinite(value) else f"${value:.{digits}f}"


def plot_ranking(table: pd.DataFrame, path, title: str) -> None:
    """Horizontal bars of batch latency per instance, fastest on top, with the 80% interval as error bars; the anchor in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 0.45 * len(table) + 1.5))
    colours = ["tab:grey" if source != "predicted" else "tab:blue" for source in table["source"]]
    latency = table["batch_latency_s"].to_numpy(float) * 1000
    below = np.nan_to_num(latency - table["low_s"].to_numpy(float) * 1000, nan=0.0)
    above = np.nan_to_num(table["high_s"].to_numpy(float) * 1000 - latency, nan=0.0)
    axes.barh(
        table["instance"],
        latency,
        color=colours,
        xerr=[below, above],
        error_kw={"ecolor": "black", "capsize": 3, "lw": 1},
    )
    axes.invert_yaxis()
    for position, row in enumerate(table.itertuples()):
        label = f" {row.batch_latency_s * 1000:.1f} ms" + (
            f", {_money(row.cost_per_epoch, 3)}/epoch" if np.isfinite(row.cost_per_epoch) else ""
        )
        axes.text(max(row.batch_latency_s, np.nan_to_num(row.high_s)) * 1000, position, label, va="center", fontsize=8)
    axes.set_xlabel("batch latency (ms), bars: 80% interval; grey = anchor, measured")
    axes.set_title(title, fontsize=10)
    axes.set_xlim(0, np.nanmax(np.fmax(latency, latency + above)) * 1.45)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise ProfcastError(f"{path}: cannot write the plot ({error.strerror or error})") from None
    finally:
        plt.close(figure)


PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_plot_path(path) -> None:
    """Refuse a --plot file matplotlib cannot write, before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ProfcastError(
            f"--plot {path}: unsupported image type {path.suffix or '(none)'!r}; accepted: {', '.join(PLOT_SUFFIXES)}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ProfcastError(f"--plot {path}: folder {folder} does not exist")


def whatif_request(anchor_profile, batchsize: int | None, input_size: int | None) -> tuple[dict, list[str]]:
    """The request columns of a --batchsize / --input-size what-if ({} when the forecast is at the profiled size), and notes.

    A profile without a batch size takes --batchsize as its own (epoch time only), as before what-ifs.
    """
    from profcast.jobmodel.requests import WHATIF_BATCHSIZE, WHATIF_INPUT_SIZE
    from profcast.models.whatif import input_size as size_of

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
    """Refuse a samples-per-epoch, batch or input size that is not positive, naming the option."""
    if dataset_size <= 0:
        raise ProfcastError(f"--dataset-size {dataset_size} is not a positive number of samples")
    if batchsize is not None and batchsize <= 0:
        raise ProfcastError(f"--batchsize {batchsize} is not a positive integer")
    if input_size is not None and input_size <= 0:
        raise ProfcastError(f"--input-size {input_size} is not a positive integer")


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
    if (table["source"] == UNMEASURED_SOURCE).any():
        notes.append(
            "unmeasured GPU(s) "
            + ", ".join(table.loc[table["source"] == UNMEASURED_SOURCE, "instance"])
            + ": no measurement of them; forecast from their figures by the per-call model; their 80% interval "
            "adds its leave-one-GPU-out errors to the model's own (docs/new-gpu.md)"
        )
    from profcast.jobmodel.measurement import forecast_warnings

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


def recommend(args) -> str:
    """Everything the CLI does, returning the text it prints (errors raise ProfcastError)."""
    from profcast.config import compose_train_config
    from profcast.serve.model_info import model_lines, training_data_line
    from profcast.tracking.store import use_store

    check_sizes(args.dataset_size, args.batchsize, getattr(args, "input_size", None))
    if args.plot:
        check_plot_path(args.plot)
    if args.anchor is None and not args.model:
        raise ProfcastError("pass --anchor (its registered champion forecasts) or --model (the anchor is the model's)")
    if args.anchor is not None:
        anchor_profile = read_anchor_profile(args.profile, args.anchor)  # a bad profile fails before any store is asked
    defaults = compose_train_config()
    use_store(defaults.tracking_uri)
    model, uri = load_job_model(args.model, args.anchor, defaults.registry.alias)
    anchor = args.anchor or model.metadata.metadata["anchor"]  # load_job_model checked it is there
    if args.anchor is None:
        anchor_profile = read_anchor_profile(args.profile, anchor)
    result = forecast(
        model, uri, anchor_profile, anchor, args.batchsize, getattr(args, "input_size", None), args.dataset_size
    )
    lines = [
        f"profile: {args.profile} ({result.profile_kind}, {result.n_ops} op columns) on anchor {anchor}",
        *model_lines(uri, result.metadata),
        f"epoch:   {result.epoch}",
        "",
        format_table(result.table),
    ]
    lines += [f"note: {note}" for note in result.notes]
    if args.plot:
        trained = textwrap.fill(f"trained on {training_data_line(result.metadata)}", 75)  # fits the 7-inch figure
        at = ", ".join(
            f"{key.split('_', 1)[1].replace('batchsize', 'batch')} {value:g}"
            for key, value in result.sizes.items()
            if key.startswith("whatif_")
        )
        title = (
            f"{Path(args.profile).name} from {anchor}: predicted batch latency{f' at {at}' if at else ''}\n{trained}"
        )
        plot_ranking(result.table, args.plot, title)
        lines.append(f"plot:    {args.plot}")
    return "\n".join(lines)


def load_job_model(model_uri: str | None, anchor: str | None, alias: str):
    """The job model at ``model_uri``, or the one registered for the anchor under ``alias``; one-line errors.

    ``anchor`` None (with a ``model_uri``) takes the model's own anchor."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from profcast.registration.champion import champion_uri, registered_name
    from profcast.serve.model_folder import load_checked_model

    uri = model_uri or champion_uri(anchor, alias)
    try:
        # Fetch and check the folder first: MLflow would load whatever its MLmodel names.
        model = load_checked_model(mlflow.artifacts.download_artifacts(artifact_uri=uri), shown=uri)
    except MlflowException as error:
        if model_uri is None:
            raise ProfcastError(
                f"no model registered as {registered_name(anchor)}@{alias} in {mlflow.get_tracking_uri()}; "
                f"run the sweep first, e.g. python -m profcast.train -m anchor={anchor} regressor=rf,knn,ratio, "
                "or pass --model URI"
            ) from None
        raise ProfcastError(f"cannot load model {uri}: {error.message.splitlines()[0]}") from None
    except OSError as error:
        raise ProfcastError(f"cannot load model {uri}: {error}") from None
    model_anchor = (model.metadata.metadata or {}).get("anchor")
    if model_anchor is None:
        raise ProfcastError(
            f"{uri} is not a profcast job model (no anchor in its metadata); pass a runs:/<job run>/profcast or models:/ URI"
        )
    if anchor is not None and model_anchor != anchor:
        raise ProfcastError(
            f"{uri} predicts from profiles taken on {model_anchor}, not {anchor}; pass --anchor {model_anchor} or another model"
        )
    return model, uri
