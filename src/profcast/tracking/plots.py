"""Figures logged with each target run: predicted vs true cells, and error per op column.

Margins are set from the label lengths instead of ``tight_layout``, which draws every figure an
extra time to measure it (most of a fast job's plotting time).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def predicted_vs_true_figure(truth: pd.DataFrame, predicted: pd.DataFrame, title: str):
    """Log-log scatter of every held-out cell with a positive true value."""
    known = predicted.notna() & (truth > 0)
    true_values = truth.to_numpy()[known.to_numpy()]
    predicted_values = np.maximum(predicted.to_numpy()[known.to_numpy()], 1e-3)
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.scatter(true_values, predicted_values, s=4, alpha=0.4)
    axes.set(xlabel="measured op time (us)", ylabel="predicted op time (us)", title=title)
    if true_values.size:
        low, high = true_values.min(), true_values.max()
        axes.plot([low, high], [low, high], color="black", linewidth=1, label="perfect")
        axes.legend(loc="upper left")
        axes.set(xscale="log", yscale="log")  # only with positive values: matplotlib cannot log-scale nothing
        axes.minorticks_off()  # unlabelled minor ticks of a log axis cost more to draw than the points
    else:
        axes.text(0.5, 0.5, "no held-out cell with a positive measured time", ha="center", transform=axes.transAxes)
    figure.subplots_adjust(left=0.15, right=0.96, bottom=0.11, top=0.93)
    return figure


def column_error_figure(column_mape: pd.Series, title: str):
    """Horizontal bars of MAPE per op column, worst on top."""
    ordered = column_mape.replace([np.inf, -np.inf], np.nan).dropna().sort_values()
    height = max(3, 0.22 * len(ordered) + 1)
    figure, axes = plt.subplots(figsize=(7, height))
    # Tick labels are positions' names, not categories: two op names that print alike stay two bars;
    # '$' is escaped so a name like 'Host_$x$' is shown as written, not parsed as mathtext.
    axes.barh(np.arange(len(ordered)), ordered.to_numpy())
    axes.set_yticks(np.arange(len(ordered)), [str(name).replace("$", r"\$") for name in ordered.index])
    if ordered.empty:
        axes.text(0.5, 0.5, "no column with a measurable error", ha="center", transform=axes.transAxes)
    axes.set(xlabel="MAPE (%)", title=title)
    axes.tick_params(axis="y", labelsize=7)
    longest = max((len(str(name)) for name in ordered.index), default=1)
    # ~0.055 in per 7-pt character of the op names, 0.6 in for the title and the x axis label
    figure.subplots_adjust(
        left=min(0.1 + 0.055 * longest / 7, 0.6), right=0.97, bottom=0.6 / height, top=1 - 0.4 / height
    )
    return figure


def close(figure) -> None:
    """Free a figure once it is logged (sweeps make many)."""
    plt.close(figure)


def log_target_figures(truth: pd.DataFrame, predicted: pd.DataFrame, column_mape: pd.Series, title: str) -> None:
    """Log both figures of a target run (pred_vs_true.png, column_errors.png) on the active MLflow run."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

    for figure, name in (
        (predicted_vs_true_figure(truth, predicted, title), "pred_vs_true.png"),
        (column_error_figure(column_mape, title), "column_errors.png"),
    ):
        mlflow.log_figure(figure, name)
        close(figure)
