"""The Hydra config as objects: compose ``conf/train.yaml`` and build what each option group names."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from profcast.errors import ProfcastError

REPO_ROOT = Path(__file__).resolve().parents[2]  # src/profcast/config.py -> the checkout
# src/profcast/conf is a link to the checkout's conf/ and, in an installed wheel, the copied configs. A
# checkout without symlinks (git on Windows by default) has a small text file there: use conf/.
_PACKAGE_CONF = Path(__file__).resolve().parent / "conf"
CONF_DIR = _PACKAGE_CONF if _PACKAGE_CONF.is_dir() else REPO_ROOT / "conf"


def cache_root(code_root: Path = REPO_ROOT) -> Path:
    """Where generated data is cached: ``.cache/profcast`` in a source checkout (beside the code),
    the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, ``/profcast``) for an installed package,
    whose code folder is site-packages."""
    if (code_root / "pyproject.toml").is_file():
        return code_root / ".cache" / "profcast"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "profcast"


CACHE_ROOT = cache_root()
# Keys of an option that describe it (for run names and params) and are not constructor arguments.
DESCRIPTIVE_KEYS = ("name",)


def instantiate_option(group: str, option: DictConfig):
    """Build the object an option group's ``_target_`` names; a bad option is a one-line error."""
    from hydra.utils import instantiate

    if option is None or "_target_" not in option:
        raise ProfcastError(f"config group '{group}' has no _target_ to build; pick one of the files in conf/{group}/")
    arguments = {key: value for key, value in OmegaConf.to_container(option, resolve=True).items() if key not in DESCRIPTIVE_KEYS}
    try:
        return instantiate(arguments, _convert_="all")
    except ProfcastError:
        raise
    except Exception as error:  # Hydra wraps the constructor's own complaint
        cause = error.__cause__ or error
        if isinstance(cause, ProfcastError):
            raise cause from None
        raise ProfcastError(f"{group} '{option.get('name', option['_target_'])}' cannot be built from its config: {cause}") from None


def compose_train_config(overrides=()) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, as ``python -m profcast.train`` would build it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="train", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def checked_estimator(group: str, option: DictConfig, estimator):
    """Run scikit-learn's parameter checks now (the estimator's and a wrapped one's), so a bad
    hyper-parameter fails before any run opens rather than inside the first fit."""
    for part in (estimator, getattr(estimator, "estimator", None)):
        if part is not None and hasattr(part, "_validate_params") and hasattr(part, "_parameter_constraints"):
            try:
                part._validate_params()
            except (ValueError, TypeError) as error:
                raise ProfcastError(f"{group} '{option.get('name', '?')}': {error}") from None
    return estimator
