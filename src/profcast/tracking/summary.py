"""A job run's summary: one row per target (``targets.csv``, ``targets.md``) and one chart.

The MLflow UI shows a job's nested target runs only when expanded; the summary puts every target's
headline errors on the job run itself, and as the run's description.
"""

from __future__ import annotations

import pandas as pd

from profcast.csv_cells import to_safe_csv
from profcast.tracking import plots

# Columns of the per-target table, in the order a reader compares them.
SUMMARY_METRICS = ("wape", "cell_ape_median", "mape_median", "total_mape", "batch_latency_mape", "false_nonzero_rate")


def target_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per target with its headline metrics (percentages), worst WAPE first."""
    rows = [
        {"target": target, **{name: metrics.get(name) for name in SUMMARY_METRICS if name in metrics}}
        for target, metrics in results.items()
    ]
    table = pd.DataFrame(rows)
    if "wape" in table:
        table = table.sort_values("wape", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def target_figure(table: pd.DataFrame, title: str):
    """Bars of WAPE and batch latency MAPE per target."""

    columns = [name for name in ("wape", "batch_latency_mape") if name in table]
    figure, axes = plots.plt.subplots(figsize=(7, 0.35 * len(table) + 1.8))
    table.set_index("target")[columns].iloc[::-1].plot.barh(ax=axes)
    axes.set(xlabel="error (%)", ylabel="", title=title)
    figure.tight_layout()
    return figure


def log_job_summary(results: dict[str, dict], title: str) -> pd.DataFrame:
    """Log targets.csv, targets.md and targets.png on the active run and set its description."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    table = target_table(results)
    markdown = table.to_markdown(index=False, floatfmt=".1f")
    mlflow.log_text(to_safe_csv(table, index=False), "targets.csv")
    mlflow.log_text(markdown + "\n", "targets.md")
    figure = target_figure(table, title)
    mlflow.log_figure(figure, "targets.png")
    plots.close(figure)
    mlflow.set_tag("mlflow.note.content", f"Errors per target (%), {title}\n\n{markdown}")
    return table
