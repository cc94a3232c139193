"""Named reference suites (``conf/suites.yaml``, plus a user's ``--suites-file``) and the ordered workloads each one runs.

The order gives a usable catalogue early: first every network once at its smallest batch and input
size (so a budget that ends early still covers every network, and the model can hold networks out),
then the rest of the grid from the cheapest workload to the dearest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from profcast.collect.networks import IMAGE, NETWORKS, Network, dataset_name
from profcast.config import CONF_DIR
from profcast.errors import ProfcastError

SUITE_CATALOGUE = CONF_DIR / "suites.yaml"
OPTIMIZERS = ("sgd", "adam")
SETTINGS = {
    "networks",
    "width",
    "depth",
    "batch_sizes",
    "image_sizes",
    "sequence_lengths",
    "optimizers",
    "steps",
    "warmup",
    "include",
}


@dataclass(frozen=True)
class Workload:
    """One training job of a suite: a network at one batch size, input size and optimizer, built at ``width``/``depth``."""

    network: Network
    batchsize: int
    input_size: int
    optimizer: str
    width: float
    depth: float
    steps: int
    warmup: int

    @property
    def dataset(self) -> str:
        return dataset_name(self.network, self.input_size)

    @property
    def name(self) -> str:
        """``<dataset>-<model>-<optimizer>-<batchsize>``: the trace's file stem and the manifest's key."""
        return f"{self.dataset}-{self.network.name}-{self.optimizer}-{self.batchsize}"

    @property
    def cost(self) -> float:
        """A rough size of the work (inputs per step x input elements), for ordering only."""
        elements = self.input_size**2 if self.network.input_kind == IMAGE else self.input_size
        return self.batchsize * elements * self.width


def load_suites(suites_file=None) -> dict[str, dict]:
    """The suites of ``conf/suites.yaml``, with those of ``suites_file`` added or replacing them by name."""
    suites = _read_suites(SUITE_CATALOGUE)
    if suites_file is not None:
        suites.update(_read_suites(Path(suites_file)))
    return suites


def suite_workloads(name: str, suites: dict[str, dict]) -> list[Workload]:
    """The workloads of suite ``name`` (its includes too), each once, in run order (see the module docstring)."""
    if name not in suites:
        raise ProfcastError(f"--suite {name}: no such suite; known: {', '.join(sorted(suites))}")
    grid = _grid(name, suites, seen=())
    unique = list({workload.name: workload for workload in grid}.values())
    first_of_network = {}
    for workload in sorted(unique, key=lambda w: (w.batchsize, w.input_size, OPTIMIZERS.index(w.optimizer))):
        first_of_network.setdefault(workload.network.name, workload)
    first = [first_of_network[network] for network in dict.fromkeys(w.network.name for w in unique)]
    rest = sorted(
        (w for w in unique if w not in first), key=lambda w: (w.cost, w.network.name, OPTIMIZERS.index(w.optimizer))
    )
    return first + rest


def _grid(name: str, suites: dict[str, dict], seen: tuple) -> list[Workload]:
    if name in seen:
        raise ProfcastError(f"suite {name!r} includes itself (through {' -> '.join(seen)})")
    if name not in suites:
        raise ProfcastError(
            f"suite {seen[-1]!r} includes {name!r}, which is no suite; known: {', '.join(sorted(suites))}"
        )
    settings = suites[name]
    workloads = [w for included in settings.get("include", []) for w in _grid(included, suites, (*seen, name))]
    for network_name in settings.get("networks", []):
        network = NETWORKS[network_name]
        sizes = settings.get("image_sizes" if network.input_kind == IMAGE else "sequence_lengths", [])
        if not sizes:
            key = "image_sizes" if network.input_kind == IMAGE else "sequence_lengths"
            raise ProfcastError(f"suite {name!r}: network {network_name} needs {key}, which the suite does not give")
        workloads += [
            Workload(
                network,
                batchsize,
                size,
                optimizer,
                float(settings.get("width", 1.0)),
                float(settings.get("depth", 1.0)),
                int(settings.get("steps", 3)),
                int(settings.get("warmup", 1)),
            )
            for batchsize in settings.get("batch_sizes", [])
            for size in sizes
            for optimizer in settings.get("optimizers", ["sgd"])
        ]
    return workloads


def _read_suites(path: Path) -> dict[str, dict]:

    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ProfcastError(f"{path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ProfcastError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    suites = content.get("suites") if isinstance(content, dict) else None
    if not isinstance(suites, dict) or not suites:
        raise ProfcastError(f"{path}: expected a mapping 'suites:' of suite name -> settings")
    for name, settings in suites.items():
        _check_suite(path, str(name), settings)
    return {str(name): settings for name, settings in suites.items()}


def _check_suite(path: Path, name: str, settings) -> None:
    where = f"{path}: suite {name!r}"
    if not isinstance(settings, dict):
        raise ProfcastError(f"{where}: expected a mapping of settings ({', '.join(sorted(SETTINGS))})")
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ProfcastError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(SETTINGS))}")
    if "-" in name or "/" in name:
        raise ProfcastError(f"{where}: a suite name has no '-' or '/'")
    for network in settings.get("networks", []):
        if network not in NETWORKS:
            raise ProfcastError(f"{where}: unknown network {network!r}; known: {', '.join(NETWORKS)}")
    for optimizer in settings.get("optimizers", []):
        if optimizer not in OPTIMIZERS:
            raise ProfcastError(f"{where}: unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    for key in ("batch_sizes", "image_sizes", "sequence_lengths"):
        values = settings.get(key, [])
        if not isinstance(values, list) or not all(_positive_int(v) for v in values):
            raise ProfcastError(f"{where}: {key} must be a list of positive integers, not {values!r}")
    for key in ("steps",):
        if key in settings and not _positive_int(settings[key]):
            raise ProfcastError(f"{where}: {key} must be a positive integer, not {settings[key]!r}")
    if "warmup" in settings and not (_positive_int(settings["warmup"]) or settings["warmup"] == 0):
        raise ProfcastError(f"{where}: warmup must be 0 or a positive integer, not {settings['warmup']!r}")
    for key in ("width", "depth"):
        value = settings.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 16:
            raise ProfcastError(f"{where}: {key} must be a number above 0 and at most 16, not {value!r}")
    if not isinstance(settings.get("include", []), list):
        raise ProfcastError(f"{where}: include must be a list of suite names")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
