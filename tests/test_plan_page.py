"""The forecast page's "Plan a distributed run" (POST /api/plan): the CLI's numbers and the CLI's refusals.

In process with FastAPI's TestClient; the page offers the shipped example models and one hand-written
figures file (with a node: section) in a temporary folder, so no shared data is needed.
"""

import json

import pytest
from fastapi.testclient import TestClient

from profcast.config import REPO_ROOT
from profcast.distributed.answers import gpu_planner, one_plan, plan_answer
from profcast.distributed.model_config import read_model_config
from profcast.limits import ClientGone, WorkBudget, spending
from profcast.plan import main as plan_main
from profcast.web.app import create_app
from profcast.web.guard import allowed_host_names
from profcast.web.plan_route import MAX_PLAN_BYTES, MAX_VALUES, PlanSources, checked
from profcast.web.workers import ForecastWorkers

PAGE = "http://127.0.0.1:8000"
MODELS = REPO_ROOT / "examples" / "models"
FIGURES = """\
name: test-gpu
fp32_tflops: 60
bf16_tflops: 900
memory_bandwidth_gbs: 3000
memory_gb: 80
node: {gpus_per_node: 8, intra_node_bw_gbs: 400, inter_node_bw_gbs: 50}
"""
PLAN = {"gpus": 8, "tp": 2, "pp": 2, "dp": 2, "micro_batch": 1, "global_batch": 16, "seq": 1024}


class NoModels:
    """Champions without models: the plan route never needs one."""

    model_uri, alias, fixed_anchor = None, "champion", None

    def anchors(self) -> list[str]:
        return []


@pytest.fixture
def figures(tmp_path):
    """A GPU figures file the page offers as ``test-gpu``."""
    folder = tmp_path / "gpus"
    folder.mkdir()
    (folder / "test-gpu.yaml").write_text(FIGURES)
    return folder / "test-gpu.yaml"


@pytest.fixture
def page(figures):
    """The page with the shipped models and ``test-gpu``, on a pool of 2 workers."""
    workers = ForecastWorkers(workers=2, queue=2)
    sources = PlanSources(models_dir=MODELS, gpu_dirs=(figures.parent,))
    app = create_app(NoModels(), allowed_host_names("127.0.0.1"), workers, sources)
    with TestClient(app, base_url=PAGE) as client:
        client.workers = workers
        yield client
    assert workers.admitted == 0  # every request gave its place back


def cli_json(capsys, argv) -> dict:
    """What ``profcast plan ... --json`` prints, as an object."""
    assert plan_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_options_list_the_shipped_models_and_the_gpus_found(page):
    options = page.get("/api/plan/options").json()
    assert options["models"] == ["gpt2-large", "llama-3-8b"]
    assert options["gpus"] == ["test-gpu"] and options["no_gpus"] is None


def test_a_plan_answers_the_library_s_and_the_cli_s_numbers(page, figures, capsys):
    answer = page.post("/api/plan", json={"model": "gpt2-large", "gpu": "test-gpu", **PLAN})
    assert answer.status_code == 200, answer.text
    shape = read_model_config(MODELS / "gpt2-large" / "config.json")
    expected = plan_answer(gpu_planner(shape, figures), one_plan(shape, 8, PLAN))
    assert answer.json() == json.loads(json.dumps(expected))
    argv = ["--model", str(MODELS / "gpt2-large" / "config.json"), "--gpu", str(figures)]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in PLAN.items()]
    assert answer.json() == cli_json(capsys, argv)
    assert set(answer.json()["terms_ms"]) >= {"compute", "tp_collectives", "pipeline_bubble", "dp_allreduce"}


def test_an_uploaded_config_plans_as_the_shipped_file_does(page):
    text = (MODELS / "llama-3-8b" / "config.json").read_text()
    uploaded = page.post(
        "/api/plan", json={"config_json": text, "config_name": "config.json", "gpu": "test-gpu", **PLAN}
    )
    shipped = page.post("/api/plan", json={"model": "llama-3-8b", "gpu": "test-gpu", **PLAN})
    assert uploaded.status_code == shipped.status_code == 200
    assert uploaded.json()["step_ms"] == shipped.json()["step_ms"]
    assert uploaded.json()["memory_gb_per_gpu"] == shipped.json()["memory_gb_per_gpu"]


def test_a_search_answers_the_cli_s_ranked_plans(page, figures, capsys):
    request = {"model": "gpt2-large", "gpu": "test-gpu", "gpus": 8, "global_batch": 16, "seq": 1024, "search": True}
    answer = page.post("/api/plan", json=request | {"top": 5})
    assert answer.status_code == 200, answer.text
    argv = ["--search", "--model", str(MODELS / "gpt2-large" / "config.json"), "--gpu", str(figures)]
    argv += ["--gpus", "8", "--global-batch", "16", "--seq", "1024", "--top", "5"]
    assert answer.json() == cli_json(capsys, argv)
    steps = [row["step_ms"] for row in answer.json()["by_time"] if row["fits"]]
    assert len(answer.json()["by_time"]) == 5 and steps == sorted(steps)


BAD_REQUESTS = [
    ("degrees that do not multiply", {"tp": 3}, "must multiply to the GPU count"),
    ("TP not dividing the heads", {"gpus": 7, "tp": 7, "pp": 1, "dp": 1}, "does not divide the model's 20 attention"),
    ("an unknown GPU", {"gpu": "h900"}, "--gpu 'h900': no such GPU on this page (it has test-gpu)"),
    ("an unknown model", {"model": "gpt-5"}, "--model 'gpt-5': no such example"),
    ("a huge GPU count", {"gpus": 10**12}, f"--gpus {10**12} is more than the page plans (at most 16,384)"),
    ("a huge sequence", {"seq": MAX_VALUES["seq"] + 1}, "--seq 1048577 is more than the page plans"),
    ("a negative micro-batch", {"micro_batch": -1}, "--micro-batch must be a positive whole number, got -1"),
    ("a fractional degree", {"tp": 1.5}, "--tp must be a positive whole number, got 1.5"),
    ("a degree as text", {"pp": "2"}, "--pp must be a positive whole number, got '2'"),
    ("an unknown precision", {"precision": "fp8"}, "--precision 'fp8' is not one of bf16, fp16, fp32"),
    ("ZeRO 3", {"zero": 3}, "only ZeRO stage 0 or 1 is modelled"),
    ("an unknown field", {"nodes": 2}, "unknown field 'nodes'"),
    ("a missing degree", {"dp": None}, "a plan needs --dp"),
    ("a bad JSON upload", {"config_json": "{not json"}, "config.json: not a readable JSON model config"),
    (
        "an upload missing a key",
        {"config_json": '{"n_embd": 64, "n_layer": 2, "n_head": 4}'},
        "missing key 'vocab_size'",
    ),
    ("an upload that is a list", {"config_json": "[1, 2]"}, "config.json: a model config must be a JSON object"),
]


@pytest.mark.parametrize("case, change, reason", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_requests_get_the_cli_s_one_line(page, case, change, reason):
    request = {"model": "gpt2-large", "gpu": "test-gpu", **PLAN} | change
    if "config_json" in change:
        request.pop("model")
    answer = page.post("/api/plan", json=request)
    assert answer.status_code == 400
    assert reason in answer.json()["error"] and "\n" not in answer.json()["error"]


def test_a_body_that_is_not_json_or_too_large_is_refused(page):
    not_json = page.post("/api/plan", content=b"gpus=8", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "the plan request is not JSON" in not_json.json()["error"]
    huge = page.post("/api/plan", content=b"{" + b" " * MAX_PLAN_BYTES + b"}")
    assert huge.status_code == 413 and f"over the page's {MAX_PLAN_BYTES:,}" in huge.json()["error"]


def test_a_cross_origin_post_is_refused(page):
    answer = page.post(
        "/api/plan",
        json={"model": "gpt2-large", "gpu": "test-gpu", **PLAN},
        headers={"origin": "http://attacker.example"},
    )
    assert answer.status_code == 403


def test_a_page_without_gpu_figures_says_so(tmp_path):
    sources = PlanSources(models_dir=MODELS, gpu_dirs=(tmp_path / "absent",))
    with TestClient(create_app(NoModels(), plan_sources=sources), base_url=PAGE) as client:
        options = client.get("/api/plan/options").json()
        answer = client.post("/api/plan", json={"model": "gpt2-large", "gpu": "h100_sxm", **PLAN})
    assert options["gpus"] == [] and "no GPU figures on this server" in options["no_gpus"]
    assert answer.status_code == 400 and answer.json()["error"] == options["no_gpus"]


def test_the_page_carries_the_plan_section(page):
    html = page.get("/").text
    assert 'id="plan"' in html and "api/plan" in html and html.count("</main>") == 1


def test_a_search_checks_its_budget_before_each_plan():
    """A client that leaves (or a budget spent) stops a search at the next plan, not at its end."""
    budget = WorkBudget(MAX_PLAN_BYTES, cpu_seconds=60)
    with spending(budget):
        rows = checked(iter(["plan 1", "plan 2", "plan 3"]), 3)
        assert [next(rows), next(rows)] == ["plan 1", "plan 2"]
        budget.cancel()
        with pytest.raises(ClientGone):
            next(rows)


def test_a_full_pool_answers_busy_before_reading_the_plan(page):
    page.workers.admitted = page.workers.capacity  # every worker and queue place taken
    try:
        answer = page.post("/api/plan", json={"model": "gpt2-large", "gpu": "test-gpu", **PLAN})
    finally:
        page.workers.admitted = 0
    assert answer.status_code == 503 and "busy" in answer.json()["error"] and answer.headers["retry-after"]
