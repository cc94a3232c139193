"""Pair anchor runs with target runs of the same workload, by keys and never by row order."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.tables import known_instances
from profcast.names import check_name
from profcast.schema import BATCH_LATENCY, WORKLOAD_KEYS, op_columns

PAIRING_MODES = ("auto", "same_exp", "cross", "median")


@dataclass
class PairedRuns:
    """Row-aligned anchor and target profiles of one (anchor, target) instance pair."""

    anchor: str
    target: str
    mode: str  # the pairing actually used (auto resolved)
    keys: pd.DataFrame  # WORKLOAD_KEYS plus anchor_exp / target_exp
    anchor_profile: pd.DataFrame  # op columns (+ batch_latency when known)
    target_profile: pd.DataFrame  # same columns, the target's measurements

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_anchor_runs(self) -> int:
        """Distinct anchor runs used (a cross pairing repeats them)."""
        return len(self.keys.drop_duplicates(WORKLOAD_KEYS + ["anchor_exp"]))


def check_instance(profiles: pd.DataFrame, name: str, role: str) -> None:
    """Fail with the list of known instances when `name` is not in the data (or not a plain name at all)."""
    check_name(name, role)
    known = known_instances(profiles)
    if name not in known:
        raise ProfcastError(f"unknown {role} instance '{name}'; instances in the data: {', '.join(known)}")


def resolve_targets(profiles: pd.DataFrame, anchor: str, target: str | list | None) -> list[str]:
    """The target instances to train for: every other instance for 'all', else the named one(s)."""
    check_instance(profiles, anchor, "anchor")
    if target in (None, "all"):
        targets = [name for name in known_instances(profiles) if name != anchor]
        if not targets:
            raise ProfcastError(f"the data holds only the anchor '{anchor}'; a target instance is needed")
        return targets
    targets = [target] if isinstance(target, str) else list(target)
    for name in targets:
        check_instance(profiles, name, "target")
        if name == anchor:
            raise ProfcastError(f"target '{name}' is the anchor itself; pick another target or 'all'")
    return targets


def check_pairing_mode(mode: str) -> None:
    """Fail with the accepted modes when ``mode`` is not one of PAIRING_MODES."""
    if mode not in PAIRING_MODES:
        raise ProfcastError(f"unknown pairing '{mode}'; accepted: {', '.join(PAIRING_MODES)}")


class Pairing:
    """A pairing strategy, the ``pairing`` config group's object (conf/pairing/<mode>.yaml):
    called with (profiles, anchor, target), it pairs their runs by ``mode`` (see ``pair_runs``)."""

    def __init__(self, mode: str):
        check_pairing_mode(mode)  # at build time: before any data is loaded
        self.mode = mode

    def __call__(self, profiles: pd.DataFrame, anchor: str, target: str) -> PairedRuns:
        return pair_runs(profiles, anchor, target, self.mode)

    def __repr__(self) -> str:
        return f"Pairing(mode={self.mode!r})"


def pair_runs(profiles: pd.DataFrame, anchor: str, target: str, mode: str = "auto") -> PairedRuns:
    """Match anchor and target runs by workload keys; see PAIRING_MODES for repetitions.

    same_exp pairs runs of the same repetition; cross pairs every anchor repetition with every
    target repetition of the workload; median pairs the medians of each side's repetitions;
    auto uses same_exp when both sides ran the same repetitions of every workload, else cross.
    """
    check_pairing_mode(mode)
    check_instance(profiles, anchor, "anchor")
    check_instance(profiles, target, "target")
    columns = op_columns(profiles.columns)
    if BATCH_LATENCY in profiles.columns:
        columns = columns + [BATCH_LATENCY]
    anchor_runs = profiles[profiles["instance_name"] == anchor]
    target_runs = profiles[profiles["instance_name"] == target]
    if mode == "auto":
        mode = "same_exp" if _repetitions_line_up(anchor_runs, target_runs) else "cross"
    if mode == "median":
        anchor_runs = _median_over_repetitions(anchor_runs, columns)
        target_runs = _median_over_repetitions(target_runs, columns)
    on = WORKLOAD_KEYS + (["exp_name"] if mode == "same_exp" else [])
    merged = anchor_runs[WORKLOAD_KEYS + ["exp_name"] + columns].merge(
        target_runs[WORKLOAD_KEYS + ["exp_name"] + columns], on=on, suffixes=("@anchor", "@target")
    )
    if merged.empty:
        raise ProfcastError(
            f"no anchor run on '{anchor}' has a target run on '{target}' with the same "
            f"{', '.join(on)}; check that both instances profiled the same workloads"
        )
    merged = merged.sort_values(on + [c for c in ("exp_name@anchor", "exp_name@target") if c in merged])
    merged = merged.reset_index(drop=True)
    keys = merged[WORKLOAD_KEYS].copy()
    if mode == "same_exp":
        keys["anchor_exp"] = keys["target_exp"] = merged["exp_name"]
    else:
        keys["anchor_exp"], keys["target_exp"] = merged["exp_name@anchor"], merged["exp_name@target"]
    return PairedRuns(
        anchor=anchor,
        target=target,
        mode=mode,
        keys=keys,
        anchor_profile=_side(merged, columns, "@anchor"),
        target_profile=_side(merged, columns, "@target"),
    )


def _side(merged: pd.DataFrame, columns: list[str], suffix: str) -> pd.DataFrame:
    side = merged[[c + suffix for c in columns]]
    side.columns = columns
    if BATCH_LATENCY in side and side[BATCH_LATENCY].isna().all():
        side = side.drop(columns=BATCH_LATENCY)
    return side


def _repetitions_line_up(anchor_runs: pd.DataFrame, target_runs: pd.DataFrame) -> bool:
    """True when every workload ran the same repetitions on both instances."""

    def repetitions(runs):
        return runs.groupby(WORKLOAD_KEYS)["exp_name"].apply(frozenset)

    anchor_reps, target_reps = repetitions(anchor_runs), repetitions(target_runs)
    shared = anchor_reps.index.intersection(target_reps.index)
    return len(shared) > 0 and bool((anchor_reps[shared] == target_reps[shared]).all())


def _median_over_repetitions(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    medians = runs.groupby(WORKLOAD_KEYS, as_index=False)[columns].median()
    medians["exp_name"] = "median"
    return medians
