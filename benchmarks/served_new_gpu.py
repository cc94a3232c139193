"""The served model for a GPU nobody measured (``src.train target_gpu=FILE``), scored on GPUs left out.

    python -m benchmarks.served_new_gpu [--data ../shared/data/neusight] [--pairs ANCHOR:TARGET,...]
                                        [--out benchmarks/results/served-new-gpu.md]

For each (anchor, target) pair: a job trained as ``target=T target_gpu=<T's NeuSight device config>``
(T's measurements left out, only its figures read; ``regressor=transfer``, defaults otherwise), its
served model (loaded with profcast's own loader) forecasts every anchor run of the data, and each
forecast is scored against T's measured step time of the same workload: absolute % error and whether
the 80% interval holds it. This is leave-one-GPU-out for the served model: the per-call rows, the
regressor and the interval never read T's measurements. The workloads are the anchor runs the regressor
was fitted on (no other anchor runs exist): its own copy error is in-sample here, smaller than the
cross-validated one the interval adds, so the interval is expected to cover more than 80% on them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.accuracy import RESULTS_DIR
from benchmarks.neusight_comparison import DEFAULT_DATA
from profcast.cli import run_cli
from profcast.schema import BATCH_LATENCY

DEFAULT_PAIRS = (
    ("v100-pcie-32gb", "l4"),
    ("v100-pcie-32gb", "h100-80gb-hbm3"),
    ("h100-80gb-hbm3", "a100-80gb-pcie"),
    ("a100-80gb-pcie", "h100-80gb-hbm3"),
    ("h100-80gb-hbm3", "l4"),
)
WORKLOAD = ["model", "optimizer", "batchsize", "dataset"]
HEADER = (
    "# The served model for a GPU left out of the data (python -m benchmarks.served_new_gpu)\n\n"
    "Each pair: trained with the target's measurements left out (`target_gpu=` its device config,\n"
    "`regressor=transfer`), the served model's forecasts of the anchor's runs against the target's\n"
    "measured step times. The regressor was fitted on these anchor runs (in-sample for it; the interval\n"
    "adds its cross-validated error, so it is expected to cover more than 80% here). Logged\n"
    "`batch_latency_mape`: the per-call model's leave-one-GPU-out error over the other GPUs.\n\n"
)
FAMILY_HEADER = (
    "# The served model for a GPU and a model family left out (python -m benchmarks.served_new_gpu "
    "--hold-out-families)\n\n"
    "Each pair and each model family of the anchor: trained with the target's measurements and the\n"
    "family's label files left out (per-call fit and regressor), the served model's forecasts of the\n"
    "family's anchor runs against the target's measured step times: out-of-sample for every part.\n"
    "A row outside the model's trained range is refused (counted, not scored).\n\n"
)


def device_config(folder: Path, target: str) -> Path:
    """The NeuSight device config of the GPU profcast calls ``target``."""
    from profcast.ingest.neusight import instance_slug

    configs = folder / "scripts" / "asplos" / "data" / "device_configs"
    (path,) = [p for p in sorted(configs.glob("*.json")) if instance_slug(p.stem) == target]
    return path


def answered_rows(model, requests: pd.DataFrame) -> pd.DataFrame:
    """The served answer of each request row alone; a row the model refuses (e.g. outside its trained
    range, as a held-out family's may be) is NaN and counted as refused, never scored as a forecast."""
    from mlflow.exceptions import MlflowException

    columns = [BATCH_LATENCY, f"{BATCH_LATENCY}_low", f"{BATCH_LATENCY}_high"]
    rows = []
    for number in range(len(requests)):
        try:
            rows.append(model.predict(requests.iloc[[number]])[columns].iloc[0].to_dict() | {"refused": False})
        except MlflowException:
            rows.append(dict.fromkeys(columns, np.nan) | {"refused": True})
    return pd.DataFrame(rows)


def families(folder: Path, anchor: str) -> list[str]:
    """The model families the anchor's label files hold."""
    from profcast.ingest.neusight_data import load_neusight_profiles

    table = load_neusight_profiles(path=folder)
    return sorted(table.loc[table["instance_name"] == anchor, "model"].unique())


def without_model_family(folder: Path, family: str, into: Path) -> Path:
    """A NeuSight folder of symlinks to ``folder``'s files but the label files of one model family."""
    for label in sorted((folder / "scripts" / "asplos" / "label").glob("*/*")):
        if not label.name.startswith(f"{family}-"):
            link = into / "scripts" / "asplos" / "label" / label.parent.name / label.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(label.resolve())
    configs = into / "scripts" / "asplos" / "data" / "device_configs"
    configs.parent.mkdir(parents=True, exist_ok=True)
    configs.symlink_to((folder / "scripts" / "asplos" / "data" / "device_configs").resolve())
    return into


def served_records(folder: Path, anchor: str, target: str, store: Path, family: str | None = None) -> pd.DataFrame:
    """Train the pair with the target left out, forecast every anchor run through the served model, score it.

    ``family``: also leave that model family out of training (the per-call fit and the regressor) and
    forecast only its runs, so the regressor's error is out-of-sample too.
    """
    import mlflow

    from profcast.config import compose_train_config
    from profcast.ingest.neusight_data import load_neusight_profiles
    from profcast.serve.model_folder import load_checked_model
    from profcast.tracking.store import configure_tracking
    from profcast.train import train

    experiment = f"{anchor}-to-{target}" + (f"-without-{family}" if family else "")
    trained_on = folder if family is None else without_model_family(folder, family, store.parent / experiment)
    overrides = [
        "data=neusight",
        f"data.path={trained_on}",
        f"anchor={anchor}",
        f"target={target}",
        f"target_gpu={device_config(folder, target)}",
        "regressor=transfer",
        "log_plots=false",
        f"tracking_uri=sqlite:///{store}",
        f"mlflow_experiment={experiment}",
    ]
    cfg = compose_train_config(overrides)
    metrics = train(cfg)[target]
    experiment_id = configure_tracking(cfg.tracking_uri, cfg.mlflow_experiment)
    job = mlflow.search_runs([experiment_id], filter_string="tags.`profcast.job_model` = 'profcast'").iloc[0]
    model = load_checked_model(mlflow.artifacts.download_artifacts(f"runs:/{job.run_id}/profcast"))
    table = load_neusight_profiles(path=folder)
    anchor_runs = table[table["instance_name"] == anchor]
    if family is not None:
        anchor_runs = anchor_runs[anchor_runs["model"] == family]
    anchor_runs = anchor_runs.reset_index(drop=True)
    answer = answered_rows(model, anchor_runs.drop(columns=["instance_name"]))
    answer[WORKLOAD] = anchor_runs[WORKLOAD].to_numpy()
    measured = table[table["instance_name"] == target].set_index(WORKLOAD)[BATCH_LATENCY]
    answer["measured_s"] = [measured.get(tuple(key), np.nan) for key in answer[WORKLOAD].itertuples(index=False)]
    answer = answer.dropna(subset=["measured_s"])
    return pd.DataFrame(
        {
            "anchor": anchor,
            "target": target,
            "held_out_family": family or "",
            **{column: answer[column].to_numpy() for column in WORKLOAD},
            "measured_s": answer["measured_s"].to_numpy(float),
            "predicted_s": answer[BATCH_LATENCY].to_numpy(float),
            "low_s": answer[f"{BATCH_LATENCY}_low"].to_numpy(float),
            "high_s": answer[f"{BATCH_LATENCY}_high"].to_numpy(float),
            "refused": answer["refused"].to_numpy(bool),
            "logged_logo_mape": metrics["batch_latency_mape"],
            "copy_mape": metrics.get("vs_per_call_batch_latency_mape", np.nan),
        }
    )


def scored(records: pd.DataFrame) -> pd.DataFrame:
    """The records with ``refused`` (bool), each forecast's % ``error``, whether its interval holds the
    measurement (``inside``, NaN when refused) and the interval's ``width`` in % of the forecast."""
    refused = records["refused"].astype(bool) if "refused" in records else pd.Series(False, index=records.index)
    inside = (records["measured_s"] >= records["low_s"]) & (records["measured_s"] <= records["high_s"])
    return records.assign(
        refused=refused,
        error=100 * (records["predicted_s"] / records["measured_s"] - 1).abs(),
        inside=inside.astype(float).where(~refused),
        width=100 * (records["high_s"] - records["low_s"]) / records["predicted_s"],
    )


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Per pair: workloads, refused ones, mean and max % error, interval coverage and mean width (of the
    answered ones), the logged errors."""
    records = scored(records)
    return records.groupby(["anchor", "target"], sort=False).agg(
        workloads=("measured_s", "size"),
        refused=("refused", "sum"),
        mean_error_pct=("error", "mean"),
        max_error_pct=("error", "max"),
        coverage_pct=("inside", lambda inside: 100 * inside.mean()),
        width_pct=("width", "mean"),
        logged_logo_mape=("logged_logo_mape", "first"),
        copy_mape=("copy_mape", "first"),
    )


def render(table: pd.DataFrame, records: pd.DataFrame) -> str:
    """The summary as Markdown, with the pooled line."""
    lines = [
        "| anchor | held-out target | workloads | refused | mean error % | max error % | 80% interval covers % | "
        "interval width % | logged batch_latency_mape | vs_per_call_batch_latency_mape |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (anchor, target), row in table.iterrows():
        lines.append(
            f"| {anchor} | {target} | {int(row.workloads)} | {int(row.refused)} | {row.mean_error_pct:.1f} | {row.max_error_pct:.1f} | "
            f"{row.coverage_pct:.0f} | {row.width_pct:.0f} | {row.logged_logo_mape:.1f} | {row.copy_mape:.1f} |"
        )
    records = scored(records)
    answered = records[~records["refused"]]
    lines.append(
        f"\nAll {len(answered)} answered forecasts ({len(records) - len(answered)} refused): mean error "
        f"{answered['error'].mean():.1f}%, interval covers {100 * answered['inside'].mean():.0f}% (aim 80%)."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.served_new_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NeuSight folder (label files, device configs)")
    parser.add_argument("--pairs", default=",".join(f"{a}:{t}" for a, t in DEFAULT_PAIRS), help="ANCHOR:TARGET,...")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: benchmarks/results/served-new-gpu.md (-families.md with --hold-out-families)",
    )
    parser.add_argument(
        "--hold-out-families",
        action="store_true",
        help="also leave each model family out in turn and forecast only its runs (one job per family and pair)",
    )
    args = parser.parse_args(argv)
    pairs = [tuple(pair.split(":", 1)) for pair in args.pairs.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "mlflow.db"
        jobs = [(anchor, target, None) for anchor, target in pairs]
        if args.hold_out_families:
            jobs = [(anchor, target, family) for anchor, target in pairs for family in families(args.data, anchor)]
        records = pd.concat(
            [served_records(args.data, anchor, target, store, family) for anchor, target, family in jobs],
            ignore_index=True,
        )
    text = render(summary(records), records)
    print(text)
    if args.out is None:
        args.out = RESULTS_DIR / ("served-new-gpu-families.md" if args.hold_out_families else "served-new-gpu.md")
    args.out.write_text((FAMILY_HEADER if args.hold_out_families else HEADER) + text + "\n", encoding="utf-8")
    records.to_csv(args.out.with_suffix(".csv"), index=False)
    return 0


if __name__ == "__main__":
    run_cli(main)
