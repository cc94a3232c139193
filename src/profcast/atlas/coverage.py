"""What the atlas covers: rows per GPU x (op kind, precision), as a printed table and a heat-map PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profcast.atlas.table import OP_KINDS, PRECISIONS


def kernel_coverage(kernels: pd.DataFrame) -> pd.DataFrame:
    """Rows per GPU (index) and ``op_kind/precision`` (columns, in the schema's order); 0 where none."""
    counts = kernels.groupby(["gpu", "op_kind", "precision"], observed=True).size()
    if counts.empty:
        return pd.DataFrame()
    table = counts.unstack(["op_kind", "precision"], fill_value=0)
    order = [(kind, precision) for kind in OP_KINDS for precision in PRECISIONS if (kind, precision) in table.columns]
    table = table[order]
    table.columns = [f"{kind}/{precision}" for kind, precision in order]
    table.index = table.index.astype(str)
    return table.sort_index().astype("int64")


def collective_coverage(collectives: pd.DataFrame) -> pd.DataFrame:
    """Rows per GPU (index) and collective op (columns); 0 where none."""
    if collectives.empty:
        return pd.DataFrame()
    table = collectives.groupby(["gpu", "op"], observed=True).size().unstack("op", fill_value=0)
    table.index = table.index.astype(str)
    return table.sort_index().astype("int64")


def coverage_text(kernels: pd.DataFrame, collectives: pd.DataFrame) -> str:
    """The coverage as printable text: the kernel table, totals, then the collectives table."""
    coverage = kernel_coverage(kernels)
    lines = [
        f"kernel atlas: {len(kernels):,} rows, {kernels['gpu'].nunique()} GPUs, "
        f"{kernels['op_kind'].nunique()} op kinds, {kernels['precision'].nunique()} precisions "
        f"(rows per GPU and op kind/precision; sources: {', '.join(sorted(kernels['source'].astype(str).unique()))})",
        coverage.replace(0, "").to_string() if not coverage.empty else "(no kernel rows)",
    ]
    if not collectives.empty:
        lines += [
            f"collectives: {len(collectives):,} rows, {collectives['gpu'].nunique()} GPUs (rows per GPU and op)",
            collective_coverage(collectives).to_string(),
        ]
    return "\n".join(lines)


def write_coverage_plot(kernels: pd.DataFrame, staging: Path) -> None:
    """A heat map of ``kernel_coverage`` (log colour, counts written in) into ``staging`` as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    coverage = kernel_coverage(kernels)
    counts = coverage.to_numpy(dtype=float)
    figure, axes = plt.subplots(figsize=(1.0 + 0.75 * max(len(coverage.columns), 1), 1.2 + 0.4 * len(coverage)))
    shown = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan)
    image = axes.imshow(shown, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(coverage.columns)), coverage.columns, rotation=45, ha="right")
    axes.set_yticks(range(len(coverage.index)), coverage.index)
    for row, column in zip(*np.nonzero(counts)):
        value = counts[row, column]
        label = f"{value / 1000:.0f}k" if value >= 10_000 else f"{value:.0f}"
        axes.text(column, row, label, ha="center", va="center", fontsize=7, color="white")
    figure.colorbar(image, ax=axes, label="log10 rows")
    axes.set_title(f"Kernel atlas coverage: {len(kernels):,} measured calls")
    figure.tight_layout()
    figure.savefig(staging, format="png", dpi=110)
    plt.close(figure)
