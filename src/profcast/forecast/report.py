"""The ranking as the user sees it: aligned text columns (CLI), cells (web page) and a bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profcast.errors import ProfcastError

# The last cell of a row: the anchor's measurement, or a target nobody measured (column ``gpu_measured``
# False: forecast from its figures by the per-call model, pipeline/unmeasured_target).
ANCHOR_CELL = "(anchor, measured)"
UNMEASURED_CELL = "(unmeasured GPU: from its figures)"
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
            ANCHOR_CELL if row.source != "predicted" else ("" if row.gpu_measured else UNMEASURED_CELL),
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
    import matplotlib  # noqa: PLC0415  matplotlib loads only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  matplotlib loads only when a plot is drawn

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
