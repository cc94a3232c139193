"""A Hydra callback that registers a -m sweep's best job per anchor as ``profcast-<anchor>@champion``.

It runs in the process that launched the sweep, just before the sweep's parent run ends (also when
the sweep stopped early: its finished jobs still get their champion). The ``registry`` block of the
config says whether, by which metric and under which alias.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from profcast.champions.register import register_sweep
from profcast.tracking.sweep import before_parent_run_ends


class RegisterChampion(Callback):
    """Adds the champion's registration to the steps taken before the sweep's parent run ends."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:

        before_parent_run_ends(register_sweep_champion)


def register_sweep_champion(config: DictConfig, parent_run_id: str) -> dict:
    """Apply the ``registry`` config block to the sweep's jobs: {anchor: registered version}."""

    return register_sweep(config, parent_run_id)


register_sweep_champion.failure = "registry: could not register the sweep's best job"
