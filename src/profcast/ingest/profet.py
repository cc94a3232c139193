"""The public PROFET dataset (real measurements): download it once, verify it, turn it into profile rows.

PROFET (github.com/ddps-lab/profet, MIT licence) publishes its measurements as four pickled pandas
DataFrames, one per anchor instance (``data/anchor_data/anchor_<g3|g4|p2|p3>.pickle``). Pickles can
run code when loaded, so the files are read in two guarded steps: their SHA-256 must equal the hash
pinned below for one commit of that repository (a moved branch or a tampered mirror cannot slip in
other bytes), and only then are those same bytes unpickled, by an unpickler that resolves nothing
but the few pandas/numpy names these files use. The hash alone would do for the files we pinned;
the allow-list still holds if someone re-pins a hash carelessly or drops a look-alike file into
the cache, because a pickle that names any other callable (``os.system``, ``builtins.eval``, ...)
is refused before that callable is looked up.

The converted table is cached beside the pickles as parquet, keyed by the commit, so the pickles
are read once. Without network, put the four files into ``profet_cache_dir()`` by hand.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from pathlib import Path

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.downloads import CACHE_ENV_VAR, fetch, make_folder, write_atomically
from profcast.ingest.tables import validate_profiles
from profcast.schema import LATENCY_COLUMNS, RUN_KEYS

log = logging.getLogger(__name__)

PROFET_REPO = "ddps-lab/profet"
# The commit that added the pickles (2022-04-29); later commits have not changed them.
PROFET_COMMIT = "ace81bf245608908b2971d049bd6c85a8eb9ba80"
PROFET_DATA_PATH = "data/anchor_data"
PROFET_FILES = {
    "anchor_g3.pickle": "b9b90044f80eb6ece9a16cb0d24072fab57b0723b2f6e34d2069f2a2de6d5c12",
    "anchor_g4.pickle": "b2857a56ccb412017dc99bcf540411462bc1e0de346047eff21994a097645d70",
    "anchor_p2.pickle": "e44d27bf61a04ce3b49c49b049a505efa7b7f8ebae04e2bb9786fabde7055c8c",
    "anchor_p3.pickle": "ccbab59840e4ab2df21baf7f8966544467b3b3d5e38a61cf7f3547b67a39fcbf",
}
# The same variable the embedded dataset's cache honours: one setting moves every cache.
TABLE_FILE = f"profiles-{PROFET_COMMIT[:12]}.parquet"
# The pickles hold 15 CNNs; the project's real-data table (../shared/data/profet, behind every
# accuracy figure in the README) holds 12 of them. data=profet gives that same table by default so
# a job reproduces those figures; all_models=True keeps these three too.
MODELS_LEFT_OUT = ("InceptionV3", "MobileNetV2", "VGG16")
OP_PREFIXES = ("Device_", "Host_")

# Every global the PROFET pickles name (pandas 1.x, numpy 1.x), mapped to where it lives now.
ALLOWED_GLOBALS = {
    ("pandas.core.frame", "DataFrame"): ("pandas.core.frame", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.indexes.base", "Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    # pandas 2 folded Int64Index into Index (pandas.read_pickle maps it the same way)
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    # numpy 2 renamed numpy.core to numpy._core
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("builtins", "slice"): ("builtins", "slice"),
}


class PandasFrameUnpickler(pickle.Unpickler):
    """An unpickler that builds pandas frames and numpy arrays and refuses to look up anything else."""

    def find_class(self, module: str, name: str):
        """Resolve only the names in ``ALLOWED_GLOBALS``; any other raises ``pickle.UnpicklingError``."""
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a PROFET table needs only pandas/numpy types"
            )
        return super().find_class(*target)


def profet_cache_dir() -> Path:
    """Where the PROFET files and their converted table live: ``$PROFCAST_CACHE_DIR/profet`` or ``~/.cache/profcast/profet``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser() / "profet"
    return Path.home() / ".cache" / "profcast" / "profet"


def profet_url(name: str) -> str:
    """The raw-file URL of one PROFET pickle at the pinned commit."""
    return f"https://raw.githubusercontent.com/{PROFET_REPO}/{PROFET_COMMIT}/{PROFET_DATA_PATH}/{name}"


def download_profet(dest: str | Path, timeout: float = 10, names=None) -> list[Path]:
    """Download the PROFET pickles (all, or ``names``) into ``dest``, each verified before it is written."""
    dest = Path(dest)
    names = list(PROFET_FILES) if names is None else list(names)
    make_folder(dest)
    written = []
    for name in names:
        url = profet_url(name)
        # The first failure ends the download: offline, trying the other files only adds delay.
        data = fetch(
            url,
            timeout,
            lambda url, reason: (
                f"cannot download the PROFET dataset: {url} failed ({reason}); to install them by hand, put "
                f"{', '.join(names)} from github.com/{PROFET_REPO} commit {PROFET_COMMIT[:12]} "
                f"({PROFET_DATA_PATH}/) into {dest}"
            ),
        )
        _check_sha256(data, name, url, PROFET_FILES[name], "not saved")
        written.append(write_atomically(dest / name, lambda staging: staging.write_bytes(data)))
    return written


def load_profet_profiles(all_models: bool = False, cache_dir=None, timeout: float = 10) -> pd.DataFrame:
    """The PROFET measurements as a validated wide profile table, downloaded and converted on first use.

    By default the 12 CNNs of the project's real-data table; ``all_models=True`` keeps all 15.
    """
    folder = Path(cache_dir) if cache_dir is not None else profet_cache_dir()
    table_path = folder / TABLE_FILE
    if table_path.is_file():
        try:
            table = pd.read_parquet(table_path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise ProfcastError(
                f"{table_path}: cannot be read ({exc}); delete it to convert the PROFET files again"
            ) from None
    else:
        table = _build_table(folder, timeout)
        write_atomically(table_path, lambda staging: table.to_parquet(staging, index=False))
    if not all_models:
        table = table[~table["model"].isin(MODELS_LEFT_OUT)]
        # Ops only the left-out models run (MobileNetV2's depthwise convolutions) would be all-zero columns.
        ops = [c for c in table.columns if c.startswith(OP_PREFIXES)]
        table = table.drop(columns=[c for c in ops if not (table[c] != 0).any()])
    return validate_profiles(table, source=f"PROFET dataset ({folder})")


def read_profet_pickle(path: str | Path, sha256: str) -> pd.DataFrame:
    """One PROFET pickle as a DataFrame; its bytes are hash-checked before any of them is unpickled."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfcastError(f"{path}: cannot be read ({exc.strerror})") from None
    _check_sha256(data, path.name, str(path), sha256, "refusing to unpickle it; delete it to download it again")
    try:
        frame = PandasFrameUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise ProfcastError(f"{path}: {exc}; not a PROFET table") from None
    except Exception as exc:  # a verified file fails only if pandas/numpy moved a class again
        raise ProfcastError(
            f"{path}: cannot be unpickled with this pandas/numpy ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise ProfcastError(f"{path}: holds a {type(frame).__name__}, expected a pandas DataFrame")
    return frame


def convert_profet_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack the per-anchor PROFET frames into one wide table: run keys, latencies, op columns."""
    stacked = pd.concat(frames, ignore_index=True)
    missing = [c for c in RUN_KEYS + LATENCY_COLUMNS if c not in stacked.columns]
    if missing:
        raise ProfcastError(f"PROFET frames lack column(s) {', '.join(missing)}")
    # The other columns are each target instance's batch latency (us) copied from the other files:
    # the same runs' own batch_latency, so they are dropped rather than kept as fake op columns.
    ops = [c for c in stacked.columns if c.startswith(OP_PREFIXES)]
    # Every file lists op columns in its own order; missing ones (if a file lacked an op) mean 0.
    return stacked[RUN_KEYS + LATENCY_COLUMNS + ops].fillna({op: 0.0 for op in ops})


def _build_table(folder: Path, timeout: float) -> pd.DataFrame:
    missing = [name for name in PROFET_FILES if not (folder / name).is_file()]
    if missing:
        download_profet(folder, timeout=timeout, names=missing)
    frames = [read_profet_pickle(folder / name, sha256) for name, sha256 in PROFET_FILES.items()]
    log.info("converting the PROFET pickles in %s", folder)
    return validate_profiles(convert_profet_frames(frames), source=f"PROFET dataset ({folder})")


def _check_sha256(data: bytes, name: str, where: str, expected: str, consequence: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ProfcastError(
            f"{where}: SHA-256 {actual[:16]}... does not match {name} of {PROFET_REPO} commit "
            f"{PROFET_COMMIT[:12]} ({expected[:16]}...); {consequence}"
        )
