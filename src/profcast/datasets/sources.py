"""Where profiles come from: each ``conf/data/*.yaml`` option names one of these sources.

A source is a small class whose constructor checks its options and whose ``load()`` returns the
validated wide profile table; ``profcast.train`` instantiates the one the config names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.tables import read_profile_table, validate_profiles


class EmbeddedData:
    """The generated default dataset (``family`` cnn, rnn or all; ``seed`` for its noise)."""

    def __init__(self, family: str = "cnn", seed: int = 0):
        from profcast.datasets.embedded import FAMILIES

        if family not in FAMILIES:
            raise ProfcastError(f"unknown data.family {family!r}; accepted: {', '.join(FAMILIES)}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ProfcastError(f"data.seed {seed!r} is not a non-negative integer")
        self.family, self.seed = family, seed

    def describe(self) -> str:
        return f"embedded generated data (family {self.family}, seed {self.seed})"

    def load(self) -> pd.DataFrame:
        from profcast.datasets.embedded import load_embedded_profiles

        return validate_profiles(load_embedded_profiles(family=self.family, seed=self.seed), source="embedded dataset")


class FileData:
    """The user's wide table (.csv, .csv.gz, .parquet) or a folder of raw profiler exports."""

    ON_BAD_FILE = ("raise", "skip")

    def __init__(self, path: str | None = None, on_bad_file: str = "raise"):
        if not path or path == "???":
            raise ProfcastError(
                "data=file needs data.path=PATH (a .csv, .csv.gz, .parquet file or a folder of profiler exports)"
            )
        if on_bad_file not in self.ON_BAD_FILE:
            raise ProfcastError(f"unknown data.on_bad_file {on_bad_file!r}; accepted: {', '.join(self.ON_BAD_FILE)}")
        self.path, self.on_bad_file = Path(str(path)).expanduser(), on_bad_file
        self.skipped: list = []  # (file, why) of files a folder read left out (on_bad_file=skip)

    def describe(self) -> str:
        return str(self.path)

    def load(self) -> pd.DataFrame:
        if self.path.is_dir() and (self.path / "scripts" / "asplos" / "label").is_dir():
            from profcast.ingest.neusight_data import load_neusight_profiles

            # A NeuSight checkout also holds README, summaries and device figures: read its label files, hash-checked.
            return load_neusight_profiles(path=self.path)
        if self.path.is_dir():
            from profcast.ingest.profile_files import read_profile_tree

            tree = read_profile_tree(self.path, on_bad_file=self.on_bad_file)
            self.skipped = tree.skipped + [(path, f"duplicate run, kept {kept}") for path, kept in tree.duplicates]
            return validate_profiles(tree.profiles, source=str(self.path))
        return read_profile_table(self.path)


class ProfetData:
    """The public PROFET measurements, downloaded once (hash-checked) and cached; see docs/real-data.md."""

    def __init__(self, all_models: bool = False):
        if not isinstance(all_models, bool):
            raise ProfcastError(f"data.all_models must be true or false, got {all_models!r}")
        self.all_models = all_models

    def describe(self) -> str:
        return f"PROFET real measurements ({'all 15' if self.all_models else '12'} CNNs)"

    def load(self) -> pd.DataFrame:
        from profcast.ingest.profet import load_profet_profiles

        return load_profet_profiles(all_models=self.all_models)


class NeusightData:
    """The public NeuSight measurements (12 GPUs, 5 transformer models), hash-checked; see docs/neusight.md.

    ``path``: a folder holding the label files (e.g. a clone of the repository); without it they are
    downloaded once into the cache. ``mode``: ``train``, ``inf`` or ``both``.
    """

    def __init__(self, path: str | None = None, mode: str = "both"):
        from profcast.ingest.neusight_data import MODES

        if mode not in MODES:
            raise ProfcastError(f"unknown data.mode {mode!r}; accepted: {', '.join(MODES)}")
        self.path = None if path in (None, "", "???") else Path(str(path)).expanduser()
        self.mode = mode

    def describe(self) -> str:
        return f"NeuSight real measurements ({self.mode}, {self.path or 'cached download'})"

    def load(self) -> pd.DataFrame:
        from profcast.ingest.neusight_data import load_neusight_profiles

        return load_neusight_profiles(path=self.path, mode=self.mode)


class AtlasSourceData:
    """Public kernel timings for the kernel atlas, pinned and hash-checked (docs/atlas.md); a table of kernel calls.

    ``path``: a folder holding the files (e.g. ``../shared/data/aiconfigurator``), read as it is; without
    it they are downloaded once into the cache. ``load_kernels()`` gives the atlas; the job pipeline's
    ``load()`` refuses, since kernel timings are not job profiles.
    """

    pinned_name = ""  # profcast.ingest.pinned_files: NEUSIGHT_KERNELS or AICONFIGURATOR

    def __init__(self, path: str | None = None):
        self.path = None if path in (None, "", "???") else Path(str(path)).expanduser()

    def pinned(self):
        """The pinned file set (``profcast.ingest.pinned_files``) this source reads."""
        from profcast.ingest import pinned_files

        return getattr(pinned_files, self.pinned_name)

    def describe(self) -> str:
        """The source in words, for logs and errors."""
        return f"{self.pinned().name} kernel timings ({self.path or 'cached download'})"

    def folder(self) -> Path:
        """The verified folder of the files (downloaded into the cache first when no ``path`` is given)."""
        return self.pinned().folder(self.path)

    def load_kernels(self):
        """The atlas (kernel and collectives tables) of these files, every file checked against the manifest first."""
        from profcast.atlas.files import load_atlas

        return load_atlas([self.folder()])

    def load(self) -> pd.DataFrame:
        """Refused: kernel timings are no job profiles (one line saying which data options are)."""
        raise ProfcastError(
            f"data={self.option} holds kernel timings for the per-call model and `profcast atlas`, not job "
            "profiles to train on; use data=neusight (or profet, file, embedded) for training"
        )


class NeusightKernelData(AtlasSourceData):
    """NeuSight's per-kernel timings (``scripts/asplos/data/dataset{,_amd}/``), FP32, 9 NVIDIA and 2 AMD GPUs."""

    pinned_name, option = "NEUSIGHT_KERNELS", "neusight_kernels"


class AiconfiguratorData(AtlasSourceData):
    """AIConfigurator's GEMM, attention and NCCL tables (bf16, fp8, fp4) and the figures of 14 GPUs."""

    pinned_name, option = "AICONFIGURATOR", "aiconfigurator"
