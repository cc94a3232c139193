"""Our per-workload errors on NeuSight's data beside the errors NeuSight published for the same GPU and workload.

    python -m benchmarks.neusight_comparison [--rows benchmarks/results/accuracy-neusight-rows.csv]
        [--data ../shared/data/neusight] [--method transfer] [--out benchmarks/results/neusight-vs-published.md]

``--rows`` is the per-run file ``python -m benchmarks.accuracy --data <NeuSight folder>`` writes
(held-out batch latency per anchor, target and workload). ``--data`` holds NeuSight's
``scripts/asplos/summary/{nvidia,amd}_{train,inf}.csv`` (the paper's tables of end-to-end latency
error per GPU and workload). The settings differ: NeuSight forecasts a GPU from its figures alone;
we forecast from a profile of the same workload on another GPU, having seen other models measured
on both. Our number is the absolute percentage error averaged over the anchors that forecast it.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pandas as pd

from benchmarks.accuracy import RESULTS_DIR
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.ingest.neusight import instance_slug

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "neusight"
SUMMARY = Path("scripts") / "asplos" / "summary"
# The paper's model names -> the model names of the label files.
MODEL_NAMES = {
    "BERT-Large": "bert_large",
    "GPT2-Large": "gpt2_large",
    "GPT3-XL": "gpt3_xl",
    "OPT-1.3B": "opt_13",
    "GPT3-2.7B": "gpt3_27",
    "SwitchTrans": "switch_transformer",
}
PREDICTOR = "NeuSight"


def published_errors(summary_folder: Path) -> pd.DataFrame:
    """NeuSight's own errors (%) per GPU (our instance name), mode, model and batch size, from the summary CSVs."""
    rows = []
    for vendor in ("nvidia", "amd"):
        for mode in ("train", "inf"):
            path = summary_folder / f"{vendor}_{mode}.csv"
            if not path.is_file():
                raise ProfcastError(f"{path}: no such file; expected NeuSight's {SUMMARY}/ folder")
            lines = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
            parse = _nvidia_rows if vendor == "nvidia" else _amd_rows
            rows += [{"mode": mode, **row} for row in parse(lines)]
    return pd.DataFrame(rows)


def _columns(header: list[str], batches: list[str]) -> list[tuple[str, int] | None]:
    """(model, batch) per column of a Model/Batch header pair; the model name is written once per pair of columns."""
    columns, model = [None], None
    for name, batch in zip(header[1:], batches[1:]):
        model = MODEL_NAMES.get(name.strip(), model) if name.strip() else model
        columns.append((model, int(batch)) if model and batch.strip().isdigit() else None)
    return columns


def _value(cell: str) -> float | None:
    text = cell.strip().rstrip("%")
    return float(text) if text else None


def _nvidia_rows(lines: list[list[str]]):
    gpu, columns = None, None
    for cells in lines:
        if not any(c.strip() for c in cells):
            gpu, columns = None, None
        elif len([c for c in cells if c.strip()]) == 1 and gpu is None:
            gpu = instance_slug(cells[0].strip())
        elif cells[0] == "Model":
            header = cells
        elif cells[0] == "Batch":
            columns = _columns(header, cells)
        elif cells[0] == PREDICTOR and gpu and columns:
            for column, cell in zip(columns, cells):
                if column and _value(cell) is not None:
                    yield {"target": gpu, "model": column[0], "batchsize": column[1], "published_error": _value(cell)}


def _amd_rows(lines: list[list[str]]):
    header, columns = lines[0], None
    for cells in lines[1:]:
        if cells and cells[0].startswith("Batch"):
            columns = _columns(header, cells)
        elif cells and cells[0].strip() and columns:
            gpu = instance_slug(cells[0].strip())
            for column, cell in zip(columns, cells):
                if column and _value(cell) is not None:
                    yield {"target": gpu, "model": column[0], "batchsize": column[1], "published_error": _value(cell)}


def our_errors(rows: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per target, mode, model and batch size: our mean absolute % error over anchors, and how many anchors."""
    rows = rows[rows["method"] == method].copy()
    if rows.empty:
        raise ProfcastError(f"no held-out rows of method {method!r} in the rows file")
    rows["ape"] = (rows["predicted_s"] - rows["measured_s"]).abs() / rows["measured_s"] * 100
    rows = rows.rename(columns={"optimizer": "mode"})
    grouped = rows.groupby(["target", "mode", "model", "batchsize"])["ape"]
    return pd.DataFrame({"our_error": grouped.mean(), "anchors": grouped.size()}).reset_index()


def comparison_table(ours: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every workload we forecast, with NeuSight's published error where the paper gives one."""
    table = ours.merge(published, on=["target", "mode", "model", "batchsize"], how="left")
    return table.sort_values(["target", "mode", "model", "batchsize"]).reset_index(drop=True)


def render(table: pd.DataFrame, method: str, rows_path: Path) -> str:
    """The markdown page: caveat, the per-workload table, and means over the workloads both have."""
    both = table.dropna(subset=["published_error"])
    lines = [
        "# NeuSight data: our per-workload error beside NeuSight's published error\n",
        f"Ours: `{method}`, leave-one-model-out, from `{rows_path.name}` (`python -m benchmarks.accuracy --data <NeuSight folder>`);",
        "absolute % error of the batch (step) latency, averaged over the anchor GPUs that forecast the workload.",
        "NeuSight's: `scripts/asplos/summary/*.csv` of NeuSight commit 6945927d9afc (the paper's tables).\n",
        "**The settings differ.** NeuSight forecasts a GPU from its figures alone (no run on it); we forecast from a",
        "profile of the same workload measured on another GPU, having seen *other* models measured on both GPUs.",
        "The numbers are side by side for orientation, not a contest on equal terms.\n",
        f"Workloads with both numbers: {len(both)}; mean error ours {both['our_error'].mean():.1f}%, "
        f"NeuSight's {both['published_error'].mean():.1f}%; ours lower in {(both['our_error'] < both['published_error']).sum()} of them.\n",
        "| target | mode | model | batch | ours % | anchors | NeuSight published % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        published = "-" if pd.isna(row.published_error) else f"{row.published_error:.1f}"
        lines.append(
            f"| {row.target} | {row.mode} | {row.model} | {row.batchsize} | {row.our_error:.1f} | {row.anchors} | {published} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.neusight_comparison", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows",
        type=Path,
        default=RESULTS_DIR / "accuracy-neusight-rows.csv",
        help="per-run file of benchmarks.accuracy",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="NeuSight folder (with scripts/asplos/summary/)"
    )
    parser.add_argument("--method", default="transfer", help="which method's rows to compare (default transfer)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "neusight-vs-published.md")
    args = parser.parse_args(argv)
    if not args.rows.is_file():
        raise ProfcastError(
            f"--rows {args.rows}: no such file; run python -m benchmarks.accuracy --data <NeuSight folder> first"
        )
    table = comparison_table(our_errors(pd.read_csv(args.rows), args.method), published_errors(args.data / SUMMARY))
    text = render(table, args.method, args.rows)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
