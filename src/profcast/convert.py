"""Convert profile files of any supported kind (PyTorch traces, tf_stats exports, tables) into one wide table.

    profcast convert runs/ extra/vgg11.pt.trace.json.gz --instance p3.2xlarge --out table.csv

Folders are read as ``<exp>/<instance>/<dataset>-<model>-<optimizer>-<batchsize>.<ext>``; a single
file's workload comes from its name; the key options override both. One row per run.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from profcast.cli import run_cli
from profcast.csv_cells import to_safe_csv
from profcast.errors import ProfcastError
from profcast.ingest.profile_files import ACCEPTED, ProfileTree, profiles_table, read_profile_rows, read_profile_tree
from profcast.ingest.tfstats import ON_BAD_FILE_CHOICES
from profcast.schema import RUN_KEYS

log = logging.getLogger(__name__)

KEY_OPTIONS = {
    "exp": "exp_name",
    "instance": "instance_name",
    "dataset": "dataset",
    "model": "model",
    "optimizer": "optimizer",
    "batchsize": "batchsize",
}
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def convert(paths: list, keys: dict | None = None, on_bad_file: str = "raise") -> ProfileTree:
    """Read every file and folder in ``paths`` into one validated wide table (``keys`` override run keys)."""
    if on_bad_file not in ON_BAD_FILE_CHOICES:
        raise ProfcastError(f"on_bad_file={on_bad_file!r} is not supported; use one of {list(ON_BAD_FILE_CHOICES)}")
    keys = keys or {}
    sourced_runs, n_files, skipped, duplicates = [], 0, [], []  # (path, row) pairs
    for path in map(Path, paths):
        if path.is_dir():
            tree = read_profile_tree(path, on_bad_file=on_bad_file, keys=keys)
            sourced_runs += [(path, row) for row in tree.profiles.to_dict("records")]
            n_files, skipped, duplicates = n_files + tree.n_files, skipped + tree.skipped, duplicates + tree.duplicates
            continue
        if not path.exists():
            raise ProfcastError(f"{path}: no such file or folder; expected a folder or {ACCEPTED}")
        n_files += 1
        try:
            rows = read_profile_rows(path, keys)
            for row in rows:
                _require_keys(path, row)
            sourced_runs += [(path, row) for row in rows]
        except ProfcastError as problem:
            if on_bad_file == "raise":
                raise
            log.warning("skipped %s", problem)
            skipped.append((str(path), str(problem).removeprefix(f"{path}: ")))
    runs = _first_of_each_run(sourced_runs, on_bad_file, duplicates)
    if not runs:
        raise ProfcastError(
            f"none of the {n_files} profile files could be read"
            + (f"; first problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else "")
        )
    return ProfileTree(profiles_table(runs, source="converted profiles"), n_files, skipped, duplicates)


def write_table_atomically(table: pd.DataFrame, out) -> None:
    """Write ``table`` as CSV (gzipped for ``.csv.gz``) or Parquet; a failed write leaves no file behind."""
    out = Path(out)
    if not out.name.lower().endswith(OUTPUT_SUFFIXES):
        raise ProfcastError(f"--out {out}: unsupported table type; use one of {', '.join(OUTPUT_SUFFIXES)}")
    if not out.parent.is_dir():
        raise ProfcastError(f"--out {out}: folder {out.parent} does not exist")
    handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(handle)
    try:
        if out.name.lower().endswith(".parquet"):
            table.to_parquet(partial, index=False)
        else:
            to_safe_csv(table, partial, index=False, compression="gzip" if out.name.lower().endswith(".gz") else None)
        os.replace(partial, out)  # readers see the old file or the whole new one, never half of it
    except OSError as error:
        raise ProfcastError(f"--out {out}: cannot write ({error.strerror or error})") from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def main(argv=None) -> int:
    """Command line entry point: one-line errors, exit code 2."""
    parser = argparse.ArgumentParser(prog="profcast convert", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help=f"folders, or files: {ACCEPTED}")
    parser.add_argument("--out", required=True, help="the wide table to write (.csv, .csv.gz or .parquet)")
    for option, key in KEY_OPTIONS.items():
        parser.add_argument(f"--{option}", type=int if option == "batchsize" else str, help=f"{key} of every run read")
    parser.add_argument(
        "--on-bad-file",
        choices=ON_BAD_FILE_CHOICES,
        default="raise",
        help="stop at the first bad file (raise) or leave bad files out and count them (skip)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="profcast: warning: %(message)s")
    keys = {key: getattr(args, option) for option, key in KEY_OPTIONS.items() if getattr(args, option) is not None}
    result = convert(args.paths, keys, args.on_bad_file)
    write_table_atomically(result.profiles, args.out)
    print(
        f"converted {len(result.profiles)} runs from {result.n_files} files into {args.out}; "
        f"skipped {len(result.skipped)} bad files and {len(result.duplicates)} duplicate runs"
    )
    return 0


def _first_of_each_run(sourced_runs: list[tuple[Path, dict]], on_bad_file: str, duplicates: list) -> list[dict]:
    """Rows with distinct run keys across all inputs; a repeat raises or is listed in ``duplicates``."""
    first_source, runs = {}, []
    for path, row in sourced_runs:
        run = tuple(row[key] for key in RUN_KEYS)
        if run in first_source:
            if on_bad_file == "raise":
                raise ProfcastError(
                    f"{path}: duplicate run {dict(zip(RUN_KEYS, run))}, already read from "
                    f"{first_source[run]}; keep one file per run or pass --on-bad-file skip"
                )
            log.warning("skipped duplicate run %s from %s", dict(zip(RUN_KEYS, run)), path)
            duplicates.append((str(path), str(first_source[run])))
            continue
        first_source[run] = path
        runs.append(row)
    return runs


def _require_keys(path: Path, run: dict) -> None:
    missing = [key for key in RUN_KEYS if run.get(key) is None or run.get(key) != run.get(key)]  # None or NaN
    if missing:
        options = " ".join(
            f"--{option} {'N' if option == 'batchsize' else 'NAME'}"
            for option, key in KEY_OPTIONS.items()
            if key in missing
        )
        raise ProfcastError(
            f"{path}: cannot tell the run's {', '.join(missing)} from the file; pass {options} "
            "or name it <dataset>-<model>-<optimizer>-<batchsize>.<ext>"
        )


if __name__ == "__main__":
    run_cli(main)
