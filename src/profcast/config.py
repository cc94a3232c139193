"""The Hydra config as objects: compose ``conf/train.yaml`` and build what each option group names."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from profcast.config_schema import SCHEMA_PREFIX, register_schemas
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
register_schemas()  # before any composition: conf/train.yaml and the shipped options name these schemas


def instantiate_option(group: str, option: DictConfig, choice: str | None = None):
    """Build the object an option group's ``_target_`` names; a bad option is a one-line error naming
    the ``choice`` (the option picked, e.g. ``rf``), else its ``_target_``."""
    from hydra.utils import instantiate  # noqa: PLC0415  Hydra only where a config is composed or an option built

    if option is None or "_target_" not in option:
        raise ProfcastError(f"config group '{group}' has no _target_ to build; pick one of the files in conf/{group}/")
    shown = choice or option["_target_"]
    missing = sorted(OmegaConf.missing_keys(option))
    if missing:
        raise ProfcastError(f"{group} '{shown}' needs a value for {', '.join(missing)}")
    try:
        return instantiate(OmegaConf.to_container(option, resolve=True), _convert_="all")
    except ProfcastError:
        raise
    except Exception as error:  # Hydra wraps the constructor's own complaint
        cause = error.__cause__ or error
        if isinstance(cause, ProfcastError):
            raise cause from None
        raise ProfcastError(f"{group} '{shown}' cannot be built from its config: {cause}") from None


def option_choices(cfg: DictConfig) -> dict[str, str]:
    """The option picked in each group (``regressor: rf``), from Hydra's runtime choices: the ``hydra``
    node of a config composed with ``return_hydra_config=True``, else the running ``@hydra.main`` app's."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415  Hydra only where a config is composed or an option built

    if "hydra" in cfg:
        choices = cfg.hydra.runtime.choices
    elif HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
    else:
        raise ValueError(
            "no Hydra runtime choices: compose the config with return_hydra_config=True (compose_train_config)"
        )
    return {group: str(choice) for group, choice in choices.items() if choice is not None}


def option_name(choice: str, built) -> str:
    """What runs call an option: the name it gives itself when its keys change what it is
    (``features=top features.k=25`` is ``top25``), else the option picked (``rf``)."""
    return str(getattr(built, "option_name", None) or choice)


def compose_train_config(overrides=()) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``, as ``profcast train`` would build it
    (with its ``hydra`` node, whose runtime choices name the options); a config error is one line."""
    from hydra import compose, initialize_config_dir  # noqa: PLC0415  Hydra only where a config is composed or an option built
    from hydra.core.global_hydra import GlobalHydra  # noqa: PLC0415  Hydra only where a config is composed or an option built

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"), config_errors_as_user_errors():
            return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


@contextmanager
def config_errors_as_user_errors():
    """Hydra's composition errors (an unknown option or key, a wrong type, a bad override) raised as
    one-line ProfcastErrors."""
    from hydra.errors import HydraException  # noqa: PLC0415  Hydra only where a config is composed or an option built

    try:
        yield
    except (HydraException, OmegaConfBaseException) as error:
        raise ProfcastError(config_error_line(error)) from None


# Lines of Hydra's and OmegaConf's messages that point at internals rather than at the user's input.
_INTERNAL_LINES = ("full_key:", "object_type=", "reference_type=", "provider=")


def config_error_line(error: Exception) -> str:
    """Hydra's composition error, and the OmegaConf error it wraps, as one line: its search path
    and the schemas among a group's options left out."""

    texts = [str(error)] + (
        [str(error.__cause__)] if error.__cause__ is not None and str(error.__cause__) not in str(error) else []
    )
    sentences, options = [], []
    for line in "\n".join(texts).split("Config search path")[0].splitlines():
        words = line.strip()
        if not words or words.startswith(_INTERNAL_LINES) or words.startswith(SCHEMA_PREFIX):
            continue
        if line.startswith("\t"):  # one option of a group Hydra lists
            options.append(words)
        else:
            sentences.append(words if words[-1] in ".:" else words + ".")
    message = " ".join(sentences)
    return f"config: {message} {', '.join(options)}" if options else f"config: {message}"


def checked_estimator(group: str, choice: str, estimator):
    """Run scikit-learn's parameter checks now (the estimator's and a wrapped one's), so a bad
    hyper-parameter fails before any run opens rather than inside the first fit."""
    for part in (estimator, getattr(estimator, "estimator", None)):
        if part is not None and hasattr(part, "_validate_params") and hasattr(part, "_parameter_constraints"):
            try:
                part._validate_params()
            except (ValueError, TypeError) as error:
                raise ProfcastError(f"{group} '{choice}': {error}") from None
    return estimator
