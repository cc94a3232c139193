"""Which data a job stands on: generated or real, and a fingerprint of the loaded table."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

GENERATED = "generated"
REAL = "real"


def data_kind(data_option) -> str:
    """``generated`` for the embedded default (data=embedded), ``real`` for measured profiles."""
    target = str((data_option or {}).get("_target_", ""))
    return GENERATED if target.endswith("EmbeddedData") else REAL


def data_fingerprint(profiles: pd.DataFrame) -> str:
    """A short SHA-256 of the loaded table, independent of row and column order."""
    ordered = profiles.reindex(columns=sorted(profiles.columns))
    row_hashes = np.sort(pd.util.hash_pandas_object(ordered, index=False).to_numpy())
    digest = hashlib.sha256("\x1f".join(map(str, ordered.columns)).encode())
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()[:16]
