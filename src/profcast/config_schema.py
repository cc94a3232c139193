"""The config's schema: one dataclass per option kind, registered in Hydra's ConfigStore.

``conf/train.yaml`` starts its defaults with ``train_schema`` and every shipped option YAML with its
group's ``base_*`` schema, so Hydra refuses a typo'd key or a wrong type (``whatif.max_iter=abc``)
while composing, before anything is built or any run opened. The schemas hold types only: every
value (and so every default) is stated once, in the YAML.

Where a key truly varies the schema leaves it open (``Any``): each option group at the top level
(so a user's own option YAML works without a schema of its own), a regressor's ``estimator`` (the
keyword arguments of whichever scikit-learn estimator it names; the estimator checks them),
``target`` and ``split.holdout`` (one name or a list), ``n_jobs`` (``auto`` or a number).

Adding a group is one field on ``TrainConfig`` (``vocabulary: Any = MISSING``) plus, for checked
options, a dataclass here and a line in ``OPTION_SCHEMAS``; its YAML options then start with
``defaults: [base_<name>]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class OptionConfig:
    """An option that builds the class ``_target_`` names, with no keys of its own."""

    _target_: str = MISSING


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class EmbeddedDataConfig(OptionConfig):
    family: str = MISSING
    seed: int = MISSING


@dataclass
class FileDataConfig(OptionConfig):
    path: Optional[str] = MISSING
    on_bad_file: str = MISSING


@dataclass
class ProfetDataConfig(OptionConfig):
    all_models: bool = MISSING


@dataclass
class VocabularyConfig(OptionConfig):
    canonical: bool = MISSING
    extra: Optional[str] = MISSING


@dataclass
class NeusightDataConfig(OptionConfig):
    path: Optional[str] = MISSING
    mode: str = MISSING


@dataclass
class AtlasSourceConfig(OptionConfig):
    path: Optional[str] = MISSING


# ---- features, split, pairing -------------------------------------------------------------------
@dataclass
class TopColumnsConfig(OptionConfig):
    k: int = MISSING


@dataclass
class GroupSplitConfig(OptionConfig):
    group_keys: Any = MISSING  # one workload key or a list
    holdout: Any = MISSING  # null, one model name or a list


@dataclass
class PairingConfig(OptionConfig):
    mode: str = MISSING


# ---- regressors ---------------------------------------------------------------------------------
@dataclass
class ProfileRegressorConfig(OptionConfig):
    target_transform: str = MISSING
    estimator: Any = MISSING  # {_target_: <sklearn estimator>, its keyword arguments}: they vary by estimator


@dataclass
class TransferRegressorConfig(OptionConfig):
    max_iter: int = MISSING
    learning_rate: float = MISSING
    max_leaf_nodes: int = MISSING
    min_samples_leaf: int = MISSING
    max_training_cells: int = MISSING
    random_state: int = MISSING


@dataclass
class ProfetRegressorConfig(OptionConfig):
    n_estimators: int = MISSING
    n_jobs: Optional[int] = MISSING
    random_state: int = MISSING


# ---- what-if --------------------------------------------------------------------------------------
@dataclass
class SizeWhatIfConfig(OptionConfig):
    max_iter: int = MISSING


# ---- the job ------------------------------------------------------------------------------------
@dataclass
class RegistryConfig:
    enabled: bool = MISSING
    metric: str = MISSING
    lower_is_better: bool = MISSING
    alias: str = MISSING
    register_single: bool = MISSING


@dataclass
class PerCallConfig:
    max_iter: int = MISSING


@dataclass
class TrainConfig:
    # Option groups: open here so an option without a schema of its own (a user's YAML) still composes;
    # each shipped option brings its own schema through its defaults list.
    data: Any = MISSING
    features: Any = MISSING
    split: Any = MISSING
    regressor: Any = MISSING
    pairing: Any = MISSING
    whatif: Any = MISSING
    vocabulary: Any = MISSING
    anchor: str = MISSING
    target: Any = MISSING  # 'all', one instance name or a list
    target_gpu: Optional[str] = MISSING  # figures file of a GPU nobody measured (pipeline/unmeasured_target)
    mlflow_experiment: str = MISSING
    tracking_uri: Optional[str] = MISSING
    log_model: bool = MISSING
    log_plots: bool = MISSING
    n_jobs: Any = MISSING  # 'auto' or a number of processes
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    per_call: PerCallConfig = field(default_factory=PerCallConfig)


# (group, schema name, schema): an option YAML of the group names its schema in its defaults list.
OPTION_SCHEMAS = (
    ("data", "base_embedded", EmbeddedDataConfig),
    ("data", "base_file", FileDataConfig),
    ("data", "base_profet", ProfetDataConfig),
    ("data", "base_neusight", NeusightDataConfig),
    ("data", "base_atlas_source", AtlasSourceConfig),
    ("vocabulary", "base_vocabulary", VocabularyConfig),
    ("features", "base_features", OptionConfig),
    ("features", "base_top", TopColumnsConfig),
    ("split", "base_group_split", GroupSplitConfig),
    ("pairing", "base_pairing", PairingConfig),
    ("regressor", "base_profile_regressor", ProfileRegressorConfig),
    ("regressor", "base_transfer", TransferRegressorConfig),
    ("regressor", "base_profet", ProfetRegressorConfig),
    ("whatif", "base_size_whatif", SizeWhatIfConfig),
    ("whatif", "base_whatif", OptionConfig),
)
SCHEMA_PREFIX = "base_"  # schema names in a group's option list, left out of what users are offered


def register_schemas() -> None:
    """Put ``train_schema`` and every group's ``base_*`` schema in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, name, schema in OPTION_SCHEMAS:
        store.store(group=group, name=name, node=schema)
