"""One op vocabulary across frameworks: profile columns renamed to canonical categories and summed.

A TensorFlow profile names ops by type (``Device_MatMul``), a PyTorch trace by aten op
(``Device_addmm``), a NeuSight FX-node profile by node kind (``Device_Linear_fw``). The table in
``canonical.yaml`` (data, extendable with ``vocabulary.extra=PATH``) maps every name to one category;
``to_canonical`` sums a profile's op columns per ``<prefix><category>`` (``Device_dense_matmul``,
``Host_idle``) and reports the names no entry matched (they go to ``other``) with their share of time.
Training, ``profcast.predict`` and the served job model apply the same mapping (the model stores it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from profcast.errors import ProfcastError
from profcast.schema import op_columns

DEFAULT_TABLE = Path(__file__).with_name("canonical.yaml")
PREFIXES = ("Device_", "Host_")
OTHER = "other"
IDLE = "idle"
# A CPU-only run's host categories that stay on the host side (the rest is the device's work there).
STAYS_ON_HOST_IN_CPU_RUNS = frozenset({IDLE, "host_launch_overhead"})
NATIVE, CANONICAL = "native", "canonical"
# An unmapped-names report: one row per profile column that fell into `other`.
UNMAPPED_COLUMNS = ["column", "name", "canonical_column", "time_us", "share"]


@dataclass(frozen=True)
class Mapping:
    """A loaded vocabulary table: exact names, then ordered regex rules, each to a category."""

    exact: dict[str, str]
    rules: tuple[tuple[str, str], ...]  # (pattern, category), first match wins
    categories: dict[str, str]  # category -> what it holds
    strip: tuple[str, ...] = ()  # patterns removed from a name before lookup (wrappers, namespaces)

    def category(self, name: str) -> str | None:
        """The category of an op name (without Device_/Host_), or None when nothing matches."""
        return _category(self, name)

    def as_dict(self) -> dict:
        """The table as plain data (stored in a job model's manifest as JSON)."""
        return {
            "categories": dict(self.categories),
            "strip": list(self.strip),
            "exact": dict(self.exact),
            "rules": [{"pattern": pattern, "category": category} for pattern, category in self.rules],
        }


def mapping_from_dict(table: dict, source: str = "vocabulary table") -> Mapping:
    """A Mapping from a table's plain data (``categories``, ``exact``, ``rules``); one-line errors naming the fault."""
    if not isinstance(table, dict):
        raise ProfcastError(f"{source}: expected a mapping with keys categories, exact, rules")
    categories = dict(table.get("categories") or {})
    exact = {str(name): str(category) for name, category in (table.get("exact") or {}).items()}
    strip = tuple(str(pattern) for pattern in table.get("strip") or [])
    for pattern in strip:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ProfcastError(f"{source}: strip pattern {pattern!r} is not a regular expression ({error})") from None
    rules = []
    for number, rule in enumerate(table.get("rules") or []):
        if not isinstance(rule, dict) or "pattern" not in rule or "category" not in rule:
            raise ProfcastError(f"{source}: rule {number} is not {{pattern: REGEX, category: NAME}}: {rule!r}")
        try:
            re.compile(str(rule["pattern"]))
        except re.error as error:
            raise ProfcastError(
                f"{source}: rule {number} pattern {rule['pattern']!r} is not a regular expression ({error})"
            ) from None
        rules.append((str(rule["pattern"]), str(rule["category"])))
    used = set(exact.values()) | {category for _, category in rules}
    if categories:
        unknown = sorted(used - set(categories))
        if unknown:
            raise ProfcastError(f"{source}: categories used but not declared under 'categories': {', '.join(unknown)}")
    return Mapping(exact=exact, rules=tuple(rules), categories=categories, strip=strip)


def load_mapping(extra=None) -> Mapping:
    """The packaged table, with ``extra`` (a YAML file of the same shape) merged over it:
    its exact names override the packaged ones, its rules are tried before the packaged rules (after
    every exact name), its categories and strip patterns are added."""
    table = _read_table(DEFAULT_TABLE)
    if extra:
        added = _read_table(Path(extra))
        table = {
            "categories": {**(table.get("categories") or {}), **(added.get("categories") or {})},
            "strip": [*(table.get("strip") or []), *(added.get("strip") or [])],
            "exact": {**(table.get("exact") or {}), **(added.get("exact") or {})},
            "rules": [*(added.get("rules") or []), *(table.get("rules") or [])],
        }
    return mapping_from_dict(table, str(extra or DEFAULT_TABLE))


def canonical_column(column: str, mapping: Mapping) -> tuple[str, bool]:
    """``Device_addmm`` -> (``Device_dense_matmul``, True); an unmatched name -> (``<prefix>other``, False)."""
    prefix, name = split_prefix(column)
    category = mapping.category(name)
    return f"{prefix}{category or OTHER}", category is not None


def split_prefix(column: str) -> tuple[str, str]:
    """(``Device_``, ``addmm``) for ``Device_addmm``; ("", name) for a column without a side prefix."""
    for prefix in PREFIXES:
        if column.startswith(prefix):
            return prefix, column[len(prefix) :]
    return "", column


def to_canonical(profile: pd.DataFrame, mapping: Mapping, keep=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Op columns summed per canonical column; key and latency columns (and ``keep``) kept as they are.

    Returns the frame and the unmapped report (``UNMAPPED_COLUMNS``: each column that fell into
    ``other``, its total time over the rows and its share of all op time), largest share first.
    Missing times count as 0 in a sum, unless every summed cell is missing.
    """
    ops = [column for column in op_columns(profile.columns) if column not in set(keep)]
    kept = [column for column in profile.columns if column not in set(ops)]
    renamed = {column: canonical_column(column, mapping) for column in ops}
    targets = list(dict.fromkeys(name for name, _ in renamed.values()))
    values = (
        profile[ops].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float) if ops else np.zeros((len(profile), 0))
    )
    summed = {}
    for target in targets:
        members = [i for i, column in enumerate(ops) if renamed[column][0] == target]
        block = values[:, members]
        total = np.nansum(block, axis=1)
        summed[target] = np.where(np.isnan(block).all(axis=1), np.nan, total)
    _host_work_of_cpu_runs_to_device(summed, len(profile))
    targets = list(summed)
    canonical = pd.concat([profile[kept].reset_index(drop=True), pd.DataFrame(summed, columns=sorted(targets))], axis=1)
    canonical.index = profile.index
    all_time = float(np.nansum(values))
    rows = [
        {
            "column": column,
            "name": split_prefix(column)[1],
            "canonical_column": target,
            "time_us": float(np.nansum(values[:, i])),
            "share": float(np.nansum(values[:, i])) / all_time if all_time > 0 else 0.0,
        }
        for i, (column, (target, matched)) in enumerate(renamed.items())
        if not matched
    ]
    unmapped = (
        pd.DataFrame(rows, columns=UNMAPPED_COLUMNS)
        .sort_values("share", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    return canonical, unmapped


def _host_work_of_cpu_runs_to_device(summed: dict[str, np.ndarray], rows: int) -> None:
    """In a row with no device work (a run on the CPU alone), the host's op time is the device's work.

    TensorFlow reports ops on ``/device:CPU:0`` as device ops (``Device_Conv2D``); a PyTorch trace of a
    CPU-only run has no device events, so the same work arrives as ``Host_`` self times. Canonical
    columns must mean the same whichever framework measured them, so in such a row every ``Host_``
    category but idle time and launch overhead moves to its ``Device_`` column (in place).
    """
    device = [column for column in summed if column.startswith("Device_") and column != f"Device_{IDLE}"]
    device_work = np.zeros(rows)
    for column in device:
        device_work += np.nan_to_num(summed[column])
    moved = [
        column
        for column in summed
        if column.startswith("Host_") and split_prefix(column)[1] not in STAYS_ON_HOST_IN_CPU_RUNS
    ]
    host_work = np.zeros(rows)
    for column in moved:
        host_work += np.nan_to_num(summed[column])
    cpu_run = (device_work <= 0) & (host_work > 0)
    if not cpu_run.any():
        return
    for column in moved:
        target = f"Device_{split_prefix(column)[1]}"
        into = summed.get(target, np.zeros(rows))
        summed[target] = np.where(cpu_run, np.nan_to_num(into) + np.nan_to_num(summed[column]), into)
        summed[column] = np.where(cpu_run, 0.0, summed[column])


def unmapped_note(unmapped: pd.DataFrame, shown: int = 8) -> str | None:
    """One line naming the unmapped op names and their share of time; None when every name mapped."""
    if unmapped.empty:
        return None
    names = ", ".join(f"{row.column} ({100 * row.share:.1f}%)" for row in unmapped.head(shown).itertuples())
    more = f" and {len(unmapped) - shown} more" if len(unmapped) > shown else ""
    return (
        f"{len(unmapped)} op column(s) not in the canonical vocabulary went to '{OTHER}' "
        f"({100 * unmapped['share'].sum():.1f}% of op time): {names}{more}"
    )


class Vocabulary:
    """The ``vocabulary`` config option: native op names (``canonical=False``) or the canonical categories.

    ``extra`` names a YAML table merged over the packaged one (see ``load_mapping``).
    """

    def __init__(self, canonical: bool = False, extra: str | None = None):
        self.canonical = bool(canonical)
        self.name = CANONICAL if self.canonical else NATIVE
        self.extra = extra
        if extra and not self.canonical:
            raise ProfcastError(
                "vocabulary.extra applies to the canonical vocabulary; use vocabulary=canonical vocabulary.extra=PATH"
            )
        self.mapping = load_mapping(extra) if self.canonical else None

    def apply(self, profile: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The profile in this vocabulary and the unmapped report (None for native: nothing is mapped)."""
        if self.mapping is None:
            return profile, None
        return to_canonical(profile, self.mapping)

    def stored(self) -> dict | None:
        """What a job model keeps to map its requests alike: None (native) or the name and the whole table."""
        return None if self.mapping is None else {"name": self.name, "table": self.mapping.as_dict()}


def canonical_request_columns(stored: dict | None) -> list[str]:
    """Every ``Device_``/``Host_`` column of a stored canonical vocabulary's categories (none for native):
    what a served canonical model accepts beside the names it was trained on."""
    mapping = mapping_from_stored(stored)
    if mapping is None:
        return []
    return [f"{prefix}{category}" for prefix in PREFIXES for category in mapping.categories]


def mapping_from_stored(stored: dict | None) -> Mapping | None:
    """The Mapping a job model stored with ``Vocabulary.stored``; None for a native (or older) model."""
    if not stored:
        return None
    return mapping_from_dict(stored.get("table") or {}, "the job model's stored vocabulary")


def _read_table(path: Path) -> dict:

    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfcastError(f"vocabulary table {path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ProfcastError(f"vocabulary table {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(table, dict):
        raise ProfcastError(f"vocabulary table {path}: expected a mapping with keys categories, exact, rules")
    return table


@lru_cache(maxsize=65536)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _category(mapping: Mapping, name: str) -> str | None:
    for pattern in mapping.strip:
        name = _compiled(pattern).sub("", name)
    if name in mapping.categories:  # already canonical: mapping twice changes nothing
        return name
    if name in mapping.exact:
        return mapping.exact[name]
    for pattern, category in mapping.rules:
        if _compiled(pattern).search(name):
            return category
    return None
