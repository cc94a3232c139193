"""Load the atlas from folders: every CSV and Parquet under them, told apart by content, read into two tables.

A file is read when its content is one of the atlas's kinds (a NeuSight kernel CSV, an AIConfigurator
GEMM, attention or collectives Parquet); any other file (NeuSight's shape lists, summaries, device
configs, READMEs) is passed over and counted. A file of a known kind that cannot be read stops the
load with one line naming it. NeuSight's ``test/vec.csv`` and ``habitat.csv`` repeat the rows of
``elem.csv``, ``ln.csv`` and ``softmax.csv``: there, rows identical in every column are kept once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from profcast.atlas.aiconfigurator import read_aiconfigurator_table
from profcast.atlas.collectives import concat_collective_tables
from profcast.atlas.neusight_kernels import csv_header, is_neusight_kernel_header, read_neusight_kernels
from profcast.atlas.table import concat_kernel_tables
from profcast.errors import ProfcastError

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"
ACCEPTED = "NeuSight kernel CSVs (scripts/asplos/data/dataset*/) or AIConfigurator tables (systems/data/*/*.parquet)"


@dataclass
class Atlas:
    """The kernel table, the collectives table, and which files each came from."""

    kernels: pd.DataFrame
    collectives: pd.DataFrame
    files: list = field(default_factory=list)  # (path, kind) of every file read
    passed_over: int = 0  # files under the folders of no atlas kind


def atlas_file_kind(path) -> str | None:
    """``neusight_kernels`` or ``aiconfigurator`` for a file of the atlas, by its content; None for any other file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise ProfcastError(f"{path}: cannot be read ({error.strerror or error})") from None
    if head == PARQUET_MAGIC:
        import pyarrow.parquet as pq

        from profcast.atlas.aiconfigurator import aiconfigurator_kind

        try:
            columns = pq.read_schema(path).names
        except Exception as error:  # a truncated Parquet has no footer: pyarrow raises ArrowInvalid or OSError
            raise ProfcastError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]})") from None
        return "aiconfigurator" if aiconfigurator_kind(columns) else None
    if path.suffix.lower() == ".csv":
        try:
            header = csv_header(path)
        except ProfcastError:
            return None
        return "neusight_kernels" if is_neusight_kernel_header(header) else None
    return None


def load_atlas(folders) -> Atlas:
    """Every atlas file under ``folders`` (folders or single files) as one kernel and one collectives table."""
    kernels, collectives, files, passed_over = [], [], [], 0
    for folder in folders:
        folder = Path(str(folder)).expanduser()
        if not folder.exists():
            raise ProfcastError(f"{folder}: no such file or folder; expected {ACCEPTED}")
        candidates = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        found = 0
        for path in candidates:
            if path.suffix.lower() not in (".csv", ".parquet"):
                passed_over += 1
                continue
            kind = atlas_file_kind(path)
            if kind is None:
                passed_over += 1
                continue
            found += 1
            files.append((path, kind))
            if kind == "neusight_kernels":
                kernels.append(read_neusight_kernels(path))
            else:
                table_kind, rows = read_aiconfigurator_table(path)
                (collectives if table_kind == "collectives" else kernels).append(rows)
        if not found:
            raise ProfcastError(f"{folder}: holds no atlas table; expected {ACCEPTED}")
    table = concat_kernel_tables(kernels)
    # Only NeuSight's test folder repeats rows (vec.csv, habitat.csv): checking those is enough, and cheap.
    test = ((table["source"] == "neusight") & (table["split"] == "test")).to_numpy()
    repeated = np.zeros(len(table), dtype=bool)
    repeated[test] = table[test].duplicated().to_numpy()
    if repeated.any():
        log.info("%d rows repeated in another file kept once", int(repeated.sum()))
        table = table[~repeated].reset_index(drop=True)
    return Atlas(table, concat_collective_tables(collectives).drop_duplicates(ignore_index=True), files, passed_over)
