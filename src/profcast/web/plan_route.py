"""The page's "Plan a distributed run": ``profcast plan`` (one plan, or ``--search``) as ``POST /api/plan``.

The body is one small JSON object (at most 64 KiB): a shipped model by name (``examples/models/<name>``)
or an uploaded config.json's text, a GPU by name (AIConfigurator's ``systems/*.yaml`` under
``../shared/data/aiconfigurator/systems`` when present, and ``examples/gpus/*.yaml``), and the plan's
numbers. The answer is ``profcast plan --json``'s object, or with ``"search": true`` its ranked top plans.
The request takes a place in the forecast route's worker pool under the same CPU budget, and every
refusal is the CLI's one line (400), so the page and the command agree number for number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from profcast.config import REPO_ROOT
from profcast.distributed.answers import gpu_planner, one_plan, plan_answer, ranked_plans, rankings_answer
from profcast.distributed.model_config import model_shape_from_json, read_model_config
from profcast.errors import ProfcastError
from profcast.limits import current_budget, shown_bytes, upload_budget
from profcast.web.uploads import read_limited_body, safe_file_name
from profcast.web.workers import RETRY_AFTER_SECONDS, ForecastWorkers

MAX_PLAN_BYTES = 64 * 1024  # a Llama config.json is about 1 KiB; the rest of the request is a few numbers
BODY_SECONDS = 60
# Upper bounds of the page's numbers: past the largest runs published (tens of thousands of GPUs,
# million-token contexts), and small enough that a search over them stays within the CPU budget.
MAX_VALUES = {
    "gpus": 16_384,
    "tp": 16_384,
    "pp": 16_384,
    "dp": 16_384,
    "micro_batch": 1 << 20,
    "global_batch": 1 << 20,
    "seq": 1 << 20,
    "top": 50,
}
NEEDED = ("gpu", "gpus", "global_batch", "seq")
CHOICES = {"precision": str, "recompute": bool, "zero": int, "search": bool, "model": str, "gpu": str}
UPLOAD_FIELDS = ("config_json", "config_name")
FIELDS = (*MAX_VALUES, *CHOICES, *UPLOAD_FIELDS)


@dataclass(frozen=True)
class PlanSources:
    """Where the page finds the model configs and GPU figures it offers by name."""

    models_dir: Path = REPO_ROOT / "examples" / "models"
    gpu_dirs: tuple[Path, ...] = (
        REPO_ROOT.parent / "shared" / "data" / "aiconfigurator" / "systems",
        REPO_ROOT / "examples" / "gpus",
    )

    def models(self) -> dict[str, Path]:
        """Shipped model name -> its config.json."""
        if not self.models_dir.is_dir():
            return {}
        found = (folder / "config.json" for folder in sorted(self.models_dir.iterdir()))
        return {path.parent.name: path for path in found if path.is_file()}

    def gpus(self) -> dict[str, Path]:
        """GPU name -> its figures file (the first folder's wins when two share a name)."""
        found = {}
        for folder in self.gpu_dirs:
            for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
                found.setdefault(path.stem, path)
        return found

    def no_gpu_message(self) -> str:
        """What the page says when it has no GPU figures to offer."""
        return (
            "no GPU figures on this server: none of "
            + ", ".join(str(folder) for folder in self.gpu_dirs)
            + " holds a *.yaml (AIConfigurator's systems/ or profcast figures with a node: section)"
        )


def add_plan_routes(app: FastAPI, workers: ForecastWorkers, sources: PlanSources) -> None:
    """``GET /api/plan/options`` (the models and GPUs offered) and ``POST /api/plan`` on ``workers``."""

    @app.get("/api/plan/options")
    def plan_options() -> dict:
        gpus = list(sources.gpus())
        return {
            "models": list(sources.models()),
            "gpus": gpus,
            "no_gpus": None if gpus else sources.no_gpu_message(),
            "max_bytes": MAX_PLAN_BYTES,
            "max_values": MAX_VALUES,
        }

    @app.post("/api/plan")
    async def plan_request(request: Request):
        if not workers.admit():
            return JSONResponse(
                {"error": workers.busy_message()}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        try:
            try:
                content = await asyncio.wait_for(
                    read_limited_body(request, MAX_PLAN_BYTES, oversized_plan_message), BODY_SECONDS
                )
            except TimeoutError:
                return JSONResponse({"error": f"the plan did not arrive within {BODY_SECONDS} s"}, status_code=408)
            return await workers.run(request, upload_budget(len(content)), plan_answer_for, sources, content)
        finally:
            workers.release()


def oversized_plan_message(size: int, limit: int) -> str:
    """The refusal of a plan request over the limit."""
    return (
        f"the plan request is {size:,} bytes, over the page's {limit:,} ({shown_bytes(limit)}); "
        "a config.json is about 1 KiB"
    )


def plan_answer_for(sources: PlanSources, content: bytes) -> dict:
    """The answer to one plan request's body: ``profcast plan --json``'s object, or the search's rankings."""
    values = plan_values(content)
    shape = requested_model(sources, values)
    gpus = sources.gpus()
    if not gpus:
        raise ProfcastError(sources.no_gpu_message())
    if values["gpu"] not in gpus:
        raise ProfcastError(f"--gpu {values['gpu']!r}: no such GPU on this page (it has {', '.join(gpus)})")
    path = gpus[values["gpu"]]
    try:
        planner = gpu_planner(shape, path)
    except ProfcastError as error:  # the file's name, not the server's folders
        raise ProfcastError(str(error).replace(f"{path.parent}/", "")) from None
    if values.get("search"):
        by_time, by_cost = ranked_plans(
            [planner], [values["gpus"]], values["global_batch"], values["seq"], values.get("precision", "bf16"), checked
        )
        return rankings_answer(by_time, by_cost, values.get("top", 10))
    return plan_answer(planner, one_plan(shape, values["gpus"], values))


def plan_values(content: bytes) -> dict:
    """The request's JSON object, every field known, typed and within bounds; else one line naming it."""
    try:
        values = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProfcastError(f"the plan request is not JSON ({error})") from None
    if not isinstance(values, dict):
        raise ProfcastError("the plan request must be one JSON object of the plan's fields")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ProfcastError(f"unknown field {unknown[0]!r} in the plan request (known: {', '.join(FIELDS)})")
    values = {name: value for name, value in values.items() if value is not None}
    missing = [f"--{name.replace('_', '-')}" for name in NEEDED if name not in values]
    if missing:
        raise ProfcastError(f"a plan needs {', '.join(missing)}")
    for name, limit in MAX_VALUES.items():
        value = values.get(name)
        option = f"--{name.replace('_', '-')}"
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ProfcastError(f"{option} must be a positive whole number, got {value!r}")
        if value > limit:
            raise ProfcastError(f"{option} {value} is more than the page plans (at most {limit:,})")
    for name, kind in CHOICES.items():
        value = values.get(name)
        if value is not None and (type(value) is not kind):
            raise ProfcastError(f"--{name} {value!r}: expected {kind.__name__}")
    return values


def requested_model(sources: PlanSources, values: dict):
    """The model a request names (a shipped example) or uploads (a config.json's text), read as the CLI reads one."""
    if "config_json" in values:
        text = values["config_json"]
        if not isinstance(text, str):
            raise ProfcastError("config_json must be the config.json's text (a JSON string)")
        name = safe_file_name(str(values.get("config_name") or "config.json"), b"{")
        return model_shape_from_json(text, name, default_name=Path(name).stem)
    models = sources.models()
    if "model" not in values:
        raise ProfcastError("a plan needs --model: a shipped example by name, or an uploaded config.json")
    if values["model"] not in models:
        raise ProfcastError(f"--model {values['model']!r}: no such example (the page has {', '.join(models)})")
    return read_model_config(models[values["model"]])


def checked(rows: Iterable, total: int) -> Iterator:
    """The search's forecasts, the request's budget checked before each (a search over many GPUs is stopped)."""
    budget = current_budget()
    for row in rows:
        if budget is not None:
            budget.check()
        yield row
