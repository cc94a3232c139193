"""The public NeuSight measurements (real, 12 GPUs): find or download the label files, verify them, build the table.

The files live in a folder laid out as the repository (``scripts/asplos/label/<GPU>/...``): by default
the cache ``$PROFCAST_CACHE_DIR/neusight`` or ``~/.cache/profcast/neusight``, where missing files are
downloaded from the pinned commit; or a folder the user names (``data.path``), read as it is. Every
present file is checked against the manifest shipped with the package (``data/neusight-MANIFEST.sha256``:
SHA-256, size and path of each label file of that commit) before any of it is parsed. A folder may
hold a subset of the manifest (the project's shared copy leaves one model family out): absent files
are counted in a log line, only files whose bytes differ are refused. The pin, the download and the
check are ``pinned_files.NEUSIGHT_LABELS``'s, as for every pinned data set; this module adds a label
folder holding the GPU folders directly, the fall back on the files present and the parsed table.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.downloads import make_folder, write_atomically
from profcast.ingest.neusight import read_neusight_label
from profcast.ingest.pinned_files import NEUSIGHT_LABELS, ManifestEntry
from profcast.ingest.tables import validate_profiles

log = logging.getLogger(__name__)

NEUSIGHT_REPO, NEUSIGHT_COMMIT = NEUSIGHT_LABELS.repo, NEUSIGHT_LABELS.commit
LABEL_ROOT = "scripts/asplos/label"
MODES = ("train", "inf", "both")
OP_PREFIX = "Device_"


def neusight_cache_dir() -> Path:
    """Where downloaded NeuSight files and the parsed table live: ``$PROFCAST_CACHE_DIR/neusight`` or ``~/.cache/profcast/neusight``."""
    return NEUSIGHT_LABELS.cache_dir()


def local_file(folder: Path, entry: ManifestEntry) -> Path:
    """Where ``entry`` lies in ``folder``: the repository layout, or a label folder holding the GPU folders directly."""
    if (folder / "scripts").is_dir() or not entry.path.startswith(LABEL_ROOT + "/"):
        return folder / entry.path
    return folder / entry.path[len(LABEL_ROOT) + 1 :]


def load_neusight_profiles(path=None, mode: str = "both", timeout: float = 10, cache_dir=None) -> pd.DataFrame:
    """NeuSight's label files as a validated wide profile table (one row per GPU and workload).

    ``path``: a folder holding the files (repository layout or the label folder); without it the
    cache, downloading what is missing. ``mode``: ``train``, ``inf`` or ``both``.
    """
    if mode not in MODES:
        raise ProfcastError(f"data.mode {mode!r} is not one of {', '.join(MODES)}")
    cache = Path(cache_dir) if cache_dir is not None else neusight_cache_dir()
    entries = NEUSIGHT_LABELS.entries()
    if path is None:
        folder = cache
        absent = [e for e in entries if not local_file(folder, e).is_file()]
        if absent:
            try:
                make_folder(folder)
                NEUSIGHT_LABELS.download(folder, absent, timeout)
            except ProfcastError as problem:
                if len(absent) == len(entries):  # nothing to fall back on: the one line names the folder
                    raise
                log.warning("%s; using the %d files already in %s", problem, len(entries) - len(absent), folder)
    else:
        folder = Path(str(path)).expanduser()
        if not folder.is_dir():
            raise ProfcastError(
                f"data.path {folder}: no such folder; expected NeuSight's {LABEL_ROOT}/<GPU>/ files in it"
            )
    present = [e for e in entries if local_file(folder, e).is_file()]
    if not present:
        raise ProfcastError(
            f"{folder}: holds none of NeuSight's label files; put {LABEL_ROOT}/ of github.com/"
            f"{NEUSIGHT_REPO} commit {NEUSIGHT_COMMIT[:12]} there"
        )
    for entry in present:  # every byte checked before any file is parsed
        NEUSIGHT_LABELS.verify(local_file(folder, entry), entry)
    if len(present) < len(entries):
        log.info(
            "%s: %d of the manifest's %d NeuSight files are absent; reading the %d present",
            folder,
            len(entries) - len(present),
            len(entries),
            len(present),
        )
    table = _cached_table(folder, present, cache)
    return select_mode(table, mode, source=f"NeuSight dataset ({folder})")


def select_mode(table: pd.DataFrame, mode: str, source: str) -> pd.DataFrame:
    """Training rows, inference rows or both; op columns no kept row uses are dropped."""
    if mode != "both":
        table = table[table["optimizer"] == mode]
    ops = [c for c in table.columns if c.startswith(OP_PREFIX)]
    table = table.drop(columns=[c for c in ops if not (table[c] != 0).any()])
    return validate_profiles(table.reset_index(drop=True), source=source)


def _cached_table(folder: Path, present: list[ManifestEntry], cache: Path) -> pd.DataFrame:
    """The parsed table of the verified files, cached under a key of their hashes (same bytes, same table)."""
    key = hashlib.sha256("\n".join(sorted(f"{e.sha256} {e.path}" for e in present)).encode()).hexdigest()[:16]
    table_path = cache / f"profiles-{NEUSIGHT_COMMIT[:12]}-{key}.parquet"
    if table_path.is_file():
        try:
            return pd.read_parquet(table_path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise ProfcastError(
                f"{table_path}: cannot be read ({exc}); delete it to parse the NeuSight files again"
            ) from None
    runs = [
        read_neusight_label(local_file(folder, e))
        for e in present
        if e.path.endswith(".csv") and local_file(folder, e).with_suffix(".json").is_file()
    ]
    if not runs:
        raise ProfcastError(f"{folder}: no NeuSight label CSV with its .json beside it")
    table = pd.DataFrame(runs)
    keys = [c for c in table.columns if not c.startswith(OP_PREFIX)]
    ops = sorted(c for c in table.columns if c.startswith(OP_PREFIX))
    table[ops] = table[ops].fillna(0.0)  # a node kind a model lacks ran 0 us
    table = table[keys + ops].sort_values(["instance_name", "optimizer", "model", "batchsize"], kind="stable")
    table = validate_profiles(table.reset_index(drop=True), source=f"NeuSight dataset ({folder})")
    try:
        write_atomically(table_path, lambda staging: table.to_parquet(staging, index=False))
    except ProfcastError as problem:  # a read-only cache still gives the table, parsed again next time
        log.warning("%s", problem)
    return table
