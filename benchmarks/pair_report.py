"""The per-pair table the small benchmarks print and write: one row per pair, then the mean and the max."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.accuracy import markdown_table


def pair_table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows with ``anchor`` and ``target`` -> a table indexed 'A -> B' with ``columns``, plus mean and max rows."""
    table = pd.DataFrame(rows)
    table.index = table["anchor"] + " -> " + table["target"]
    table.index.name = "pair"
    table = table[columns]
    table.loc["mean"] = table.mean()
    table.loc["max"] = table.iloc[:-1].max()
    return table


def print_and_write(table: pd.DataFrame, title: str, module: str, argv, markdown_path: Path, started: float) -> None:
    """Print the table and its wall time; write it under ``title`` with the command that made it."""
    wall_seconds = time.perf_counter() - started
    text = markdown_table(table)
    print(text)
    print(f"\nwall time {wall_seconds:.0f} s")
    command = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.write_text(
        f"# {title}\n\n`{command.strip()}` — leave-one-model-out, wall time {wall_seconds:.0f} s. Percentages.\n\n{text}\n"
    )
    print(f"wrote {markdown_path}")
