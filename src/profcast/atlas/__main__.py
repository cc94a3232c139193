"""Command line: ``profcast atlas --data DIR [--data DIR ...] [--plot FILE]``: the atlas's coverage.

``--data`` is a folder (or file) of atlas tables, read as it is, or the name of a pinned source
(``neusight_kernels``, ``aiconfigurator``): its cached download, fetched and hash-checked first if absent.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from profcast.atlas.coverage import coverage_text, write_coverage_plot
from profcast.atlas.files import ACCEPTED, load_atlas
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.ingest.downloads import write_atomically
from profcast.ingest.pinned_files import AICONFIGURATOR, NEUSIGHT_KERNELS

SOURCES = {"neusight_kernels": NEUSIGHT_KERNELS, "aiconfigurator": AICONFIGURATOR}


def atlas_folder(value: str) -> Path:
    """A ``--data`` value as a folder: the path itself, or a named source's verified cached download."""
    path = Path(value).expanduser()
    if not path.exists() and value in SOURCES:
        return SOURCES[value].folder()
    return path


def main(argv=None) -> int:
    """Load the atlas from the folders, print its coverage and write the coverage plot."""
    parser = argparse.ArgumentParser(
        prog="profcast atlas", description="Print the kernel atlas's coverage and write a coverage plot."
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help=f"a folder of {ACCEPTED}, or {' or '.join(SOURCES)} (the cached download)",
    )
    parser.add_argument("--plot", default="atlas-coverage.png", help="PNG to write (default: %(default)s)")
    args = parser.parse_args(argv)
    plot = Path(args.plot)
    if plot.suffix.lower() != ".png":
        raise ProfcastError(f"--plot {plot}: the coverage plot is a PNG; give a file name ending in .png")
    if not plot.parent.is_dir():
        raise ProfcastError(f"--plot {plot}: no folder {plot.parent} to write it in")
    started = time.perf_counter()
    atlas = load_atlas([atlas_folder(value) for value in args.data])  # every file checked before anything is written
    seconds = time.perf_counter() - started
    print(coverage_text(atlas.kernels, atlas.collectives))
    write_atomically(plot, lambda staging: write_coverage_plot(atlas.kernels, staging))
    print(
        f"read {len(atlas.files)} tables ({atlas.passed_over} other files passed over) in {seconds:.1f} s; "
        f"coverage plot: {plot}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
