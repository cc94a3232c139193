"""The embedded default dataset: the generated study, built once and cached on disk.

The first use writes the raw tf_stats tree (``profcast.generate``) and its parsed wide table
(parquet) into ``<cache parent>/embedded-v<GENERATOR_VERSION>-seed<seed>/``; later uses read
the parquet file only. The cache parent is ``cache_dir`` if given, else ``$PROFCAST_CACHE_DIR``,
else ``<repo root>/.cache/profcast`` in a checkout
(``~/.cache/profcast`` for an installed package).
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from profcast.config import CACHE_ROOT, REPO_ROOT  # noqa: F401 (REPO_ROOT: still importable from here)
from profcast.errors import ProfcastError
from profcast.generate.exports import GENERATOR_VERSION, generate_tree
from profcast.generate.networks import CNN_MODELS, RNN_MODELS
from profcast.ingest.tfstats import read_tfstats_tree

DEFAULT_CACHE_PARENT = CACHE_ROOT  # <checkout>/.cache/profcast, or ~/.cache/profcast when installed
CACHE_ENV_VAR = "PROFCAST_CACHE_DIR"
# A staging folder this old is left over from a killed first use, not one still being built.
STALE_STAGING_SECONDS = 3600
FAMILIES = {"cnn": CNN_MODELS, "rnn": RNN_MODELS, "all": CNN_MODELS + RNN_MODELS}
TREE_FOLDER = "tree"
TABLE_FILE = "profiles.parquet"


def load_embedded_profiles(family: str = "cnn", seed: int = 0, cache_dir=None) -> pd.DataFrame:
    """The generated study as a wide profile table, restricted to one model family.

    ``family`` is "cnn", "rnn" or "all". Op columns no model of the family runs are kept (all 0.0)
    so tables of different families line up.
    """
    if family not in FAMILIES:
        raise ProfcastError(f"unknown model family {family!r}; expected one of {sorted(FAMILIES)}")
    table = pd.read_parquet(_ensure_cache(seed, cache_dir) / TABLE_FILE)
    return table[table["model"].isin(FAMILIES[family])].reset_index(drop=True)


def embedded_tree_path(seed: int = 0, cache_dir=None) -> Path:
    """Folder of the generated raw tf_stats exports (``<exp>/<instance>/<run>.csv``), built if missing."""
    return _ensure_cache(seed, cache_dir) / TREE_FOLDER


def embedded_cache_path(seed: int = 0, cache_dir=None) -> Path:
    """Where the cache for ``seed`` lives (it may not exist yet)."""
    _check_seed(seed)
    return _cache_parent(cache_dir) / f"embedded-v{GENERATOR_VERSION}-seed{seed}"


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProfcastError(f"seed {seed!r} is not a non-negative integer")


def _cache_parent(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    return DEFAULT_CACHE_PARENT


def _ensure_cache(seed, cache_dir) -> Path:
    """Build the cache folder if it is missing; it only ever appears complete."""
    final = embedded_cache_path(seed, cache_dir)
    if final.is_dir():
        return final
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(parent, final.name)
    # Build beside the final folder (same file system) and rename: the rename is atomic, so a
    # crash or a concurrent first use never leaves a half-written cache under the final name.
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-building-", dir=parent))
    try:
        generate_tree(staging / TREE_FOLDER, seed=seed)
        profiles = read_tfstats_tree(staging / TREE_FOLDER).profiles
        profiles.to_parquet(staging / TABLE_FILE, index=False)
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            os.rename(staging, final)
        except OSError:
            if not final.is_dir():  # a real failure, not another process finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _remove_stale_staging(parent: Path, name: str) -> None:
    for leftover in parent.glob(f".{name}-building-*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # another process removed it first
