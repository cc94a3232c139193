"""Turn the `data` config into a validated profile table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from src.errors import ProfcastError
from src.profiles import read_profile_table, validate_profiles

DATA_SOURCES = ("embedded", "file", "profet")


def load_profiles(data_cfg: DictConfig) -> pd.DataFrame:
    """Profiles from the embedded generated dataset, the public PROFET dataset or the user's file or folder."""
    source = data_cfg.get("source")
    if source == "embedded":
        from src.embedded import load_embedded_profiles

        profiles = load_embedded_profiles(family=data_cfg.get("family", "cnn"), seed=data_cfg.get("seed", 0))
        return validate_profiles(profiles, source="embedded dataset")
    if source == "file":
        path = data_cfg.get("path")
        if not path or path == "???":
            raise ProfcastError("data=file needs data.path=PATH (a .csv, .csv.gz, .parquet file or a folder of tf_stats exports)")
        path = Path(path).expanduser()
        if path.is_dir():
            from src.tfstats import read_tfstats_tree

            tree = read_tfstats_tree(path, on_bad_file=data_cfg.get("on_bad_file", "raise"))
            return validate_profiles(tree.profiles, source=str(path))
        return read_profile_table(path)
    if source == "profet":
        from src.ingest.profet import load_profet_profiles

        return load_profet_profiles(all_models=bool(data_cfg.get("all_models", False)))
    raise ProfcastError(f"unknown data source '{source}'; accepted: {', '.join(DATA_SOURCES)}")
