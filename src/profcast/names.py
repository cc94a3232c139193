"""Instance names (an anchor, a target, a collected machine) are checked where they enter.

They become folder names, MLflow run and model names, and cells of the CSV files a user opens in a
spreadsheet, so only a plain name is accepted: letters, digits, ``.``, ``_`` and ``-``, starting with a
letter or digit (``g4dn.xlarge``, ``a100-80gb-pcie``). A name starting with ``=``, ``+``, ``-`` or ``@``
would be read as a formula by a spreadsheet; one with ``/`` or ``..`` would leave its folder.
"""

from __future__ import annotations

import re

from profcast.errors import ProfcastError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME_CHARS = 100
NAME_RULE = (
    f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME_CHARS} characters "
    "(e.g. g4dn.xlarge)"
)


def is_safe_name(name: object) -> bool:
    """Whether ``name`` is a plain instance name (see NAME_RULE)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_CHARS
        and SAFE_NAME.fullmatch(name) is not None
        and ".." not in name
    )


def check_name(name: object, what: str, where: str = "") -> str:
    """``name`` when it is safe; else one ProfcastError line naming ``what`` (e.g. ``--instance``) and ``where``."""
    if is_safe_name(name):
        return name
    text = str(name)
    shown = repr(text if len(text) <= 40 else text[:40] + "...")
    place = f"{where}: " if where else ""
    raise ProfcastError(f"{place}{what} {shown} is not a plain instance name; use {NAME_RULE}")
