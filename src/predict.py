"""Rank cloud instances for a training job from one profile taken on the anchor instance.

    python -m src.predict --profile PATH --anchor g3s.xlarge [--model URI] [--dataset-size N]
                          [--batchsize N] [--plot out.png]

PATH is a raw TensorBoard tf_stats CSV export, a CSV with rows in the training-table format
(op columns, optionally batchsize and batch_latency), or a JSON list of {op: microseconds}
objects. Without --model the anchor's registered champion (models:/profcast-<anchor>@champion)
predicts. The table is ranked by predicted batch latency, with epoch time, price and cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from src.errors import ProfcastError
from src.schema import BATCH_LATENCY, op_columns

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTANCE_CATALOGUE = REPO_ROOT / "conf" / "instances.yaml"
TRAIN_CONFIG = REPO_ROOT / "conf" / "train.yaml"
DEFAULT_DATASET_SIZE = 50_000
PROFILE_FORMATS = (
    "a TensorBoard tf_stats CSV export, a CSV of training-table rows (op columns such as Device_Conv2D), "
    "or a JSON list of {op: microseconds} objects"
)


@dataclass
class AnchorProfile:
    """One workload's profile on the anchor, as read from the user's file."""

    profile: pd.DataFrame  # one row: op columns, plus batch_latency when it was measured
    kind: str  # which of the accepted formats the file was
    batchsize: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def measured_latency(self) -> float | None:
        if BATCH_LATENCY not in self.profile:
            return None
        value = float(self.profile[BATCH_LATENCY].iloc[0])
        return value if math.isfinite(value) and value > 0 else None


def read_anchor_profile(path, anchor: str) -> AnchorProfile:
    """Read the user's profile file in whichever accepted format it is."""
    path = Path(path)
    if not path.is_file():
        raise ProfcastError(f"{path}: no such file; expected {PROFILE_FORMATS}")
    name = path.name.lower()
    if name.endswith(".json"):
        return _read_json_profile(path)
    if name.endswith((".csv", ".csv.gz")):
        if _is_tfstats_export(path):
            return _read_tfstats_profile(path)
        return _read_table_rows(path, anchor)
    raise ProfcastError(f"{path}: unsupported file type; expected {PROFILE_FORMATS}")


def _is_tfstats_export(path: Path) -> bool:
    if path.name.lower().endswith(".gz"):
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    return "Host/device" in header and "Total time (us)" in header


def _read_tfstats_profile(path: Path) -> AnchorProfile:
    from src.tfstats import read_tfstats_export, workload_from_file_name

    profile = pd.DataFrame([read_tfstats_export(path)])  # op totals, plus batch_latency from a sidecar
    workload = workload_from_file_name(path.name) or {}  # our own or PROFET's naming carries the batch size
    profile = profile.drop(columns=["epoch_latency"], errors="ignore")
    return AnchorProfile(profile, "tf_stats export", batchsize=workload.get("batchsize"))


def _read_table_rows(path: Path, anchor: str) -> AnchorProfile:
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ProfcastError(f"{path}: the file is empty; expected {PROFILE_FORMATS}") from None
    except Exception as error:  # pandas raises many types for malformed files
        raise ProfcastError(f"{path}: cannot be read as CSV ({error})") from None
    notes = []
    if "instance_name" in table.columns:
        found = sorted(table["instance_name"].dropna().astype(str).unique())
        table = table[table["instance_name"].astype(str) == anchor]
        if table.empty:
            raise ProfcastError(f"{path}: no row was profiled on the anchor {anchor}; instance_name values: {', '.join(found)}")
    if table.empty:
        raise ProfcastError(f"{path}: holds no rows")
    if len(table) > 1:
        first = table.iloc[0]
        described = " ".join(str(first[key]) for key in ("dataset", "model", "batchsize") if key in table.columns)
        notes.append(f"{path.name} holds {len(table)} profiles; ranking the first ({described or 'row 1'}); "
                     "pass a file with one row for another workload")
    row = table.head(1).reset_index(drop=True)
    batchsize = None
    if "batchsize" in row.columns:
        value = pd.to_numeric(row["batchsize"], errors="coerce").iloc[0]
        if not (np.isfinite(value) and value > 0 and value % 1 == 0):
            raise ProfcastError(f"{path}: column 'batchsize' value {row['batchsize'].iloc[0]!r} is not a positive integer")
        batchsize = int(value)
    return AnchorProfile(row, "training-table row", batchsize=batchsize, notes=notes)


def _read_json_profile(path: Path) -> AnchorProfile:
    accepted = 'expected a JSON list of {op: microseconds} objects, e.g. [{"Device_Conv2D": 812.5, "Host_IDLE": 40.1}]'
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise ProfcastError(f"{path}: not valid JSON ({error}); {accepted}") from None
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not content or not all(isinstance(item, dict) and item for item in content):
        raise ProfcastError(f"{path}: {accepted}")
    notes = []
    keys = [set(item) for item in content]
    if sum(map(len, keys)) == len(set().union(*keys)):
        profile = {op: value for item in content for op, value in item.items()}  # one op per object
    else:
        profile = content[0]  # objects repeat ops: each is a whole profile
        notes.append(f"{path.name} holds {len(content)} profiles; ranking the first; pass a file with one for another")
    frame = pd.DataFrame([profile])
    batchsize = frame.pop("batchsize").iloc[0] if "batchsize" in frame else None
    if batchsize is not None and not (isinstance(batchsize, (int, np.integer)) and batchsize > 0):
        raise ProfcastError(f"{path}: 'batchsize' is {batchsize!r}; expected a positive integer")
    return AnchorProfile(frame, "JSON profile", batchsize=batchsize, notes=notes)


def load_job_model(model_uri: str | None, anchor: str):
    """The job model at ``model_uri``, or the anchor's registered champion; one-line errors."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from src.registry import champion_uri, registered_name

    uri = model_uri or champion_uri(anchor)
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as error:
        if model_uri is None:
            raise ProfcastError(
                f"no model registered as {registered_name(anchor)}@champion in {mlflow.get_tracking_uri()}; "
                f"run the sweep first, e.g. python -m src.train -m anchor={anchor} regressor=rf,knn,ratio, "
                "or pass --model URI"
            ) from None
        raise ProfcastError(f"cannot load model {uri}: {error.message.splitlines()[0]}") from None
    except OSError as error:
        raise ProfcastError(f"cannot load model {uri}: {error}") from None
    model_anchor = (model.metadata.metadata or {}).get("anchor")
    if model_anchor is None:
        raise ProfcastError(f"{uri} is not a profcast job model (no anchor in its metadata); pass a runs:/<job run>/profcast or models:/ URI")
    if model_anchor != anchor:
        raise ProfcastError(f"{uri} predicts from profiles taken on {model_anchor}, not {anchor}; pass --anchor {model_anchor} or another model")
    return model, uri


def predict_targets(model, profile: pd.DataFrame, anchor: str) -> tuple[pd.DataFrame, list[str]]:
    """Predicted rows per target for a one-row profile, and the profile columns the model ignores."""
    from mlflow.exceptions import MlflowException

    from src.serving import checked_anchor_profiles, model_op_columns, unknown_columns

    op_columns = model_op_columns(model.metadata.get_input_schema())
    ignored = unknown_columns(profile.columns, op_columns)
    try:
        checked = checked_anchor_profiles(profile, op_columns, anchor)
    except MlflowException as error:
        raise ProfcastError(f"profile: {error.message}") from None
    return model.predict(checked), ignored


def load_catalogue(path=INSTANCE_CATALOGUE) -> dict[str, dict]:
    """Instance name -> {gpu, vcpus, price_per_hour} from conf/instances.yaml."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path))["instances"]


def recommendation_table(predicted: pd.DataFrame, anchor: str, measured_latency: float | None,
                         batchsize: int | None, dataset_size: int, catalogue: dict) -> pd.DataFrame:
    """One row per instance (targets predicted, the anchor measured when known), fastest first."""
    from src.serving import TARGET_INSTANCE

    if BATCH_LATENCY not in predicted:
        raise ProfcastError("this model does not predict batch_latency (its training data had none); nothing to rank")
    rows = [{"instance": target, "batch_latency_s": latency, "source": "predicted"}
            for target, latency in zip(predicted[TARGET_INSTANCE], predicted[BATCH_LATENCY])]
    if measured_latency is not None:
        rows.append({"instance": anchor, "batch_latency_s": measured_latency, "source": "anchor, measured"})
    table = pd.DataFrame(rows)
    steps = math.ceil(dataset_size / batchsize) if batchsize else np.nan
    table["epoch_s"] = table["batch_latency_s"] * steps
    table["gpu"] = [str((catalogue.get(name) or {}).get("gpu") or "-") for name in table["instance"]]
    table["vcpus"] = [(catalogue.get(name) or {}).get("vcpus") for name in table["instance"]]
    table["price_per_hour"] = [(catalogue.get(name) or {}).get("price_per_hour", np.nan) for name in table["instance"]]
    table["cost_per_epoch"] = table["epoch_s"] / 3600 * table["price_per_hour"]
    table["speedup"] = measured_latency / table["batch_latency_s"] if measured_latency else np.nan
    return table.sort_values("batch_latency_s", kind="stable").reset_index(drop=True)


def format_table(table: pd.DataFrame) -> str:
    """The ranking as aligned text columns."""
    header = ["rank", "instance", "GPU", "vCPUs", "batch latency", "epoch time", "$/hour", "$/epoch", "speed-up", ""]
    lines = [header]
    for rank, row in enumerate(table.itertuples(), start=1):
        lines.append([
            str(rank), row.instance, row.gpu, "-" if row.vcpus is None else str(row.vcpus),
            f"{row.batch_latency_s * 1000:.2f} ms", _duration(row.epoch_s), _money(row.price_per_hour, 3),
            _money(row.cost_per_epoch, 4), "n/a" if np.isnan(row.speedup) else f"{row.speedup:.2f}x",
            "(anchor, measured)" if row.source != "predicted" else "",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {0, 3, 4, 5, 6, 7, 8}
    return "\n".join(
        "  ".join(cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths))).rstrip()
        for line in lines
    )


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _money(value: float, digits: int) -> str:
    return "n/a" if not np.isfinite(value) else f"${value:.{digits}f}"


def plot_ranking(table: pd.DataFrame, path, title: str) -> None:
    """Horizontal bars of batch latency per instance, fastest on top; the anchor in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 0.45 * len(table) + 1.5))
    colours = ["tab:grey" if source != "predicted" else "tab:blue" for source in table["source"]]
    axes.barh(table["instance"], table["batch_latency_s"] * 1000, color=colours)
    axes.invert_yaxis()
    for position, row in enumerate(table.itertuples()):
        label = f" {row.batch_latency_s * 1000:.1f} ms" + (f", {_money(row.cost_per_epoch, 3)}/epoch" if np.isfinite(row.cost_per_epoch) else "")
        axes.text(row.batch_latency_s * 1000, position, label, va="center", fontsize=8)
    axes.set_xlabel("batch latency (ms); grey = anchor, measured")
    axes.set_title(title, fontsize=10)
    axes.set_xlim(0, table["batch_latency_s"].max() * 1000 * 1.45)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as error:
        raise ProfcastError(f"{path}: cannot write the plot ({error})") from None
    finally:
        plt.close(figure)


def recommend(args) -> str:
    """Everything the CLI does, returning the text it prints (errors raise ProfcastError)."""
    import mlflow
    from omegaconf import OmegaConf

    from src.tracking import tracking_uri

    if args.dataset_size <= 0:
        raise ProfcastError(f"--dataset-size {args.dataset_size} is not a positive number of samples")
    if args.batchsize is not None and args.batchsize <= 0:
        raise ProfcastError(f"--batchsize {args.batchsize} is not a positive integer")
    anchor_profile = read_anchor_profile(args.profile, args.anchor)
    mlflow.set_tracking_uri(tracking_uri(OmegaConf.load(TRAIN_CONFIG).get("tracking_uri")))
    model, uri = load_job_model(args.model, args.anchor)
    predicted, ignored = predict_targets(model, anchor_profile.profile, args.anchor)
    notes = list(anchor_profile.notes)
    batchsize = args.batchsize or anchor_profile.batchsize
    if args.batchsize and anchor_profile.batchsize and args.batchsize != anchor_profile.batchsize:
        notes.append(f"--batchsize {args.batchsize} overrides the profile's batch size {anchor_profile.batchsize}")
    if batchsize is None:
        notes.append("no batch size in the profile: pass --batchsize N for epoch time and cost")
    if ignored:
        shown = ", ".join(map(str, ignored[:8])) + (f" and {len(ignored) - 8} more" if len(ignored) > 8 else "")
        notes.append(f"ignored {len(ignored)} column(s) never seen in training: {shown}")
    measured = anchor_profile.measured_latency
    if measured is None:
        notes.append(f"the profile has no measured batch_latency on {args.anchor}: speed-up is n/a")
    table = recommendation_table(predicted, args.anchor, measured, batchsize, args.dataset_size, load_catalogue())
    n_ops = len(op_columns(anchor_profile.profile.columns))
    epoch = f"{args.dataset_size:,} samples / batch {batchsize} = {math.ceil(args.dataset_size / batchsize):,} steps" if batchsize else "n/a"
    lines = [
        f"profile: {args.profile} ({anchor_profile.kind}, {n_ops} op columns) on anchor {args.anchor}",
        f"model:   {uri}",
        f"epoch:   {epoch}",
        "",
        format_table(table),
    ]
    lines += [f"note: {note}" for note in notes]
    if args.plot:
        plot_ranking(table, args.plot, f"{Path(args.profile).name} from {args.anchor}: predicted batch latency")
        lines.append(f"plot:    {args.plot}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line entry point: one-line errors, exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m src.predict", description="Rank instances by predicted step time from one anchor profile.")
    parser.add_argument("--profile", required=True, help=PROFILE_FORMATS)
    parser.add_argument("--anchor", required=True, help="instance the profile was taken on, e.g. g3s.xlarge")
    parser.add_argument("--model", help="model URI (default: models:/profcast-<anchor>@champion)")
    parser.add_argument("--dataset-size", type=int, default=DEFAULT_DATASET_SIZE, help=f"samples per epoch (default {DEFAULT_DATASET_SIZE:,})")
    parser.add_argument("--batchsize", type=int, help="batch size, when the profile does not carry one")
    parser.add_argument("--plot", help="write a bar chart of the ranking to this PNG file")
    args = parser.parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.ERROR)  # the table is the output; MLflow's notes are noise here
    try:
        print(recommend(args))
    except ProfcastError as error:
        print(f"profcast: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
