"""What ``profcast plan`` answers, shared by the command and the forecast page: prices, checks and JSON.

The command line and the page's ``POST /api/plan`` build the same planners, make the same checks and
answer the same objects, so a plan forecast on the page is the number ``profcast plan --json`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import yaml

from profcast.config import CONF_DIR
from profcast.distributed.model_config import BYTES_PER_ELEMENT, ModelShape
from profcast.distributed.plan import ParallelPlan, validate_plan
from profcast.distributed.search import count_plans, rank_plans, search_plans
from profcast.distributed.step import Planner
from profcast.distributed.system import read_gpu_system
from profcast.errors import ProfcastError

GPU_CATALOGUE = CONF_DIR / "gpus.yaml"
# AIConfigurator system names -> the conf/gpus.yaml entry of the same GPU (for its price).
CATALOGUE_NAMES = {
    "a100_sxm": "a100-sxm4-40gb",
    "a100_pcie": "a100-pcie-40gb",
    "h100_sxm": "h100-80gb-hbm3",
    "l4": "l4",
}
PLAN_DEGREES = ("tp", "pp", "dp", "micro_batch")  # what one plan needs beyond the search's inputs


def catalogue_price(name: str) -> float | None:
    """USD per GPU-hour of a one-GPU cloud instance of this GPU in conf/gpus.yaml, or None."""
    if not GPU_CATALOGUE.is_file():
        return None
    gpus = (yaml.safe_load(GPU_CATALOGUE.read_text()) or {}).get("gpus", {})
    entry = gpus.get(CATALOGUE_NAMES.get(name, name)) or {}
    price = entry.get("price_per_hour")
    return float(price) if price is not None else None


def gpu_planner(shape: ModelShape, path, price: float | None = None, layer_profile=None) -> Planner:
    """A planner of ``shape`` on the GPU figures at ``path``, priced from the catalogue unless ``price`` is given."""
    system = read_gpu_system(path)
    if price is None:
        price = catalogue_price(system.name)
    return Planner(shape, system, price_per_gpu_hour=price, layer_profile=layer_profile)


def one_plan(shape: ModelShape, gpus: int, values: dict) -> ParallelPlan:
    """The plan ``values`` (``tp``, ``pp``, ``dp``, ``micro_batch``, ``global_batch``, ``seq`` ...) describe,
    checked against ``shape``; one line naming the options missing or at fault."""
    missing = [f"--{name.replace('_', '-')}" for name in PLAN_DEGREES if values.get(name) is None]
    if missing:
        raise ProfcastError(f"a plan needs {', '.join(missing)} (or --search to try every plan)")
    plan = ParallelPlan(
        gpus,
        values["tp"],
        values["pp"],
        values["dp"],
        values["micro_batch"],
        values["global_batch"],
        values["seq"],
        values.get("precision", "bf16"),
        bool(values.get("recompute", False)),
        values.get("zero", 0),
    )
    return validate_plan(plan, shape)


def plan_answer(planner: Planner, plan: ParallelPlan) -> dict:
    """``profcast plan --json``'s object for one checked plan."""
    return {"model": planner.shape.name, "gpu": planner.system.name} | planner.forecast(plan).as_dict()


def check_search(planners: list[Planner], counts: list[int], global_batch: int, seq: int, precision: str) -> int:
    """Check a search's inputs; return how many plans it will forecast (one line when none or a value is bad)."""
    if precision not in BYTES_PER_ELEMENT:
        raise ProfcastError(f"--precision {precision!r} is not one of {', '.join(BYTES_PER_ELEMENT)}")
    for option, value in (("--global-batch", global_batch), ("--seq", seq)):
        if value <= 0:
            raise ProfcastError(f"{option} must be a positive whole number, got {value}")
    total = count_plans(planners, counts, global_batch, seq, precision)
    if total == 0:
        raise ProfcastError(
            f"no valid plan for {planners[0].shape.name} on {', '.join(map(str, counts))} GPUs with global batch "
            f"{global_batch}: the global batch must divide among the data-parallel GPUs"
        )
    return total


def ranked_plans(
    planners: list[Planner],
    counts: list[int],
    global_batch: int,
    seq: int,
    precision: str,
    follow: Callable[[Iterable, int], Iterable] = lambda rows, total: rows,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every valid plan ranked by time and by cost; ``follow(rows, total)`` wraps the forecasts as they
    come (a progress bar, a budget's checks)."""
    total = check_search(planners, counts, global_batch, seq, precision)
    rows = list(follow(search_plans(planners, counts, global_batch, seq, precision), total))
    return rank_plans(rows, "time"), rank_plans(rows, "cost")


def rankings_answer(by_time: pd.DataFrame, by_cost: pd.DataFrame, top: int) -> dict:
    """``profcast plan --search --json``'s object: how many plans, and the ``top`` of each ranking."""
    answer = {"plans": len(by_time)}
    for name, table in (("by_time", by_time), ("by_cost", by_cost)):
        shown = table.head(top).astype(object)
        # a missing price is null in JSON, not NaN (which JSON does not have)
        answer[name] = shown.where(shown.notna(), None).to_dict(orient="records")
    return answer
