"""The forecast page's FastAPI app: the page, the anchors it offers, and one forecast per request.

``POST /api/forecast`` takes the profile file's bytes as the body (no multipart: the page sends the
file as it is, gzip included) with the anchor, the file's name and the what-if sizes in the query,
and answers the ranking as JSON: the CLI's table cells, the raw numbers for the error bars, what the
model stands on, the notes and the table as CSV. A bad file is a 400 with the CLI's one line.
The page's "Plan a distributed run" and its routes are ``plan_route.py`` and ``plan_section.html``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from profcast.csv_cells import to_safe_csv
from profcast.datasets.fingerprint import GENERATED
from profcast.errors import ProfcastError, first_line
from profcast.forecast.ranking import DEFAULT_DATASET_SIZE, Forecast, check_sizes, forecast
from profcast.forecast.report import latency_text, shown_header_and_cells
from profcast.forecast.sizes import whole_number
from profcast.limits import ClientGone, OverBudget, current_budget, max_request_bytes, shown_bytes, upload_budget
from profcast.names import check_name
from profcast.serve.model_info import model_lines, training_data_line
from profcast.web.champions import Champions
from profcast.web.guard import HostAndOriginGuard, allowed_host_names
from profcast.web.plan_route import PlanSources, add_plan_routes
from profcast.web.uploads import UploadTooLarge, read_limited_body, read_uploaded_profile
from profcast.web.workers import RETRY_AFTER_SECONDS, ForecastWorkers, is_compressed

log = logging.getLogger(__name__)

PROFILED_COLUMN = "profiled_latency_s"  # a what-if's table: each instance's step time at the profiled size
BODY_SECONDS = 60  # an upload that has not arrived whole by then is refused (a client trickling bytes)
CLIENT_CLOSED = 499  # no one reads it: nginx's code for "the client closed the request"


def create_app(
    champions: Champions,
    allowed_hosts=allowed_host_names("127.0.0.1"),
    workers: ForecastWorkers | None = None,
    plan_sources: PlanSources = PlanSources(),
) -> FastAPI:
    """The page and its API over ``champions`` (the store must already be chosen, as the CLI does), answering
    only requests to ``allowed_hosts`` and forecasting on ``workers`` (a bounded pool); distributed plans
    from the models and GPUs of ``plan_sources`` on the same pool."""
    workers = workers or ForecastWorkers()
    app = FastAPI(title="profcast forecast", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(HostAndOriginGuard, allowed=frozenset(allowed_hosts))
    app.router.on_shutdown.append(workers.shutdown)
    files = resources.files("profcast.web")
    # the plan section is its own file (one job each); it goes at the end of the page's <main>
    page = files.joinpath("page.html").read_text(encoding="utf-8")
    page = page.replace("</main>", files.joinpath("plan_section.html").read_text(encoding="utf-8") + "</main>", 1)
    add_plan_routes(app, workers, plan_sources)

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, error: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"error": one_line(error)}, status_code=413)

    @app.exception_handler(OverBudget)
    async def over_budget(request: Request, error: OverBudget) -> JSONResponse:
        return JSONResponse({"error": one_line(error)}, status_code=413)

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, error: ClientGone) -> Response:
        log.info("forecast stopped: %s", error)
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(ProfcastError)
    async def user_error(request: Request, error: ProfcastError) -> JSONResponse:
        return JSONResponse({"error": one_line(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("forecast failed")  # the traceback goes to the server's log, one line to the page
        return JSONResponse({"error": f"the server failed on this request ({first_line(error)})"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/anchors")
    def anchors() -> dict:
        import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store

        return {
            "anchors": champions.anchors(),
            "model": champions.model_uri,
            "store": mlflow.get_tracking_uri(),
            "alias": champions.alias,
            "max_upload_bytes": max_request_bytes(),
            "max_upload": shown_bytes(max_request_bytes()),
        }

    @app.post("/api/forecast")
    async def forecast_upload(request: Request):
        query = request.query_params
        sizes = {name: whole_number(query.get(name), name) for name in ("batchsize", "input_size", "dataset_size")}
        if sizes["dataset_size"] is None:
            sizes["dataset_size"] = DEFAULT_DATASET_SIZE
        if not workers.admit():  # before the body is read: a full page reads no more uploads
            return JSONResponse(
                {"error": workers.busy_message()}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        try:
            try:
                content = await asyncio.wait_for(read_limited_body(request, max_request_bytes()), BODY_SECONDS)
            except TimeoutError:
                return JSONResponse(
                    {"error": f"the upload did not arrive whole within {BODY_SECONDS} s; send it again"},
                    status_code=408,
                )
            return await workers.run(
                request,
                upload_budget(len(content)),
                forecast_answer,
                champions,
                content,
                compressed=is_compressed(content),
                name=query.get("name"),
                anchor=query.get("anchor") or "",
                **sizes,
            )
        finally:
            workers.release()

    return app


def forecast_answer(
    champions: Champions,
    content: bytes,
    name: str | None,
    anchor: str,
    batchsize: int | None = None,
    input_size: int | None = None,
    dataset_size: int = DEFAULT_DATASET_SIZE,
) -> dict:
    """The JSON answer for one uploaded profile: the ranking, and at a what-if size the profiled size's too."""
    if not anchor:
        raise ProfcastError("pick the anchor: the instance the profile was taken on")
    check_name(anchor, "anchor")
    check_sizes(dataset_size, batchsize, input_size)
    budget = current_budget()  # the page's: bounded text and CPU seconds (None when called directly)
    anchor_profile, shown = read_uploaded_profile(content, name, anchor)
    model, uri = champions.model(anchor)
    if budget is not None:
        budget.start()  # loading the model is the page's own work (once per model), not this request's
    result = forecast(model, uri, anchor_profile, anchor, batchsize, input_size, dataset_size)
    table = result.table
    if result.sizes:  # a what-if: beside each forecast, the same instance's at the profiled size
        if budget is not None:
            budget.check()
        profiled = forecast(model, uri, anchor_profile, anchor, None, None, dataset_size).table
        table = table.assign(
            **{PROFILED_COLUMN: table["instance"].map(profiled.set_index("instance")["batch_latency_s"])}
        )
    return answer_json(result, table, shown, anchor_profile.measured_latency, anchor_profile.batchsize)


def answer_json(
    result: Forecast, table: pd.DataFrame, shown: str, measured: float | None, profiled_batch: int | None
) -> dict:
    """What the page shows: the CLI's lines and cells, the numbers behind the bars, and the CSV download."""
    metadata = result.metadata
    at_batch = f" at batch {profiled_batch}" if profiled_batch else ""
    whatif = ", ".join(
        f"{key.removeprefix('whatif_').replace('batchsize', 'batch size').replace('_', ' ')} {value:g}"
        for key, value in result.sizes.items()
        if key.startswith("whatif_")
    )
    described = model_lines(result.model_uri, metadata)  # model, trained on, and the CLI's warning for generated data
    header, cells = shown_header_and_cells(table)
    return {
        "profile": f"{shown} ({result.profile_kind}, {result.n_ops} op columns) on anchor {result.anchor}",
        "model": described[0].removeprefix("model:").strip(),
        "trained_on": training_data_line(metadata),
        "generated_data": metadata.get("data_kind") == GENERATED,
        "warning": next((line.removeprefix("warning: ") for line in described if line.startswith("warning: ")), None),
        "epoch": result.epoch,
        "measured": f"{latency_text(measured)} per step on {result.anchor}{at_batch}" if measured else None,
        "whatif": whatif or None,
        "header": header,
        "cells": cells,
        "profiled": [latency_text(value) for value in table[PROFILED_COLUMN]] if PROFILED_COLUMN in table else None,
        "rows": json_records(table),
        "notes": result.notes,
        "csv": ranking_csv(table),
    }


def ranking_csv(table: pd.DataFrame) -> str:
    """The ranking as CSV, rank first, every number unrounded (seconds, dollars)."""
    return to_safe_csv(table.set_axis(pd.RangeIndex(1, len(table) + 1, name="rank")))


def json_records(table: pd.DataFrame) -> list[dict]:
    """The table's rows with NaN as null (JSON has no NaN)."""
    return [
        {key: (None if isinstance(value, float) and not np.isfinite(value) else value) for key, value in row.items()}
        for row in table.astype(object).to_dict("records")
    ]


def one_line(error: BaseException) -> str:
    """An error's message on one line, as ``profcast: error: ...`` prints it."""
    return " ".join(str(getattr(error, "message", error)).split("\n")).strip()
