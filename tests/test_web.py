"""The forecast web page: its API (FastAPI's TestClient) and the page itself in headless Chromium.

Both check what a user sees against ``python -m profcast.predict`` for the same profile and model:
the ranking, the what-if, the one-line errors. The browser tests skip, naming why, where Debian's
Chromium (/usr/bin/chromium) or Playwright is missing; they never download a browser.
"""

import csv
import io
import json
import re
import socket
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from profcast.champions.register import register_job
from profcast.cli import exit_code
from profcast.forecast.model_lookup import load_job_model
from profcast.forecast.profile_input import read_anchor_profile
from profcast.forecast.ranking import forecast
from profcast.forecast.report import shown_header_and_cells
from profcast.plan import main as plan_main
from profcast.predict import main as predict_main
from profcast.web.__main__ import DEFAULT_HOST, build_app, parse_args
from profcast.web.uploads import safe_file_name
from tests.conftest import REPO, TRAINED_JOB_ANCHOR, TRAINED_JOB_TARGETS, compose_train, store_with_trained_job

ANCHOR = TRAINED_JOB_ANCHOR
TARGETS = list(TRAINED_JOB_TARGETS)
EXAMPLE = REPO / "examples" / "profiles" / "vggsmall_cifar10_g3s.csv"  # the README's forecast example
ARTIFACTS = REPO / "test-artifacts"  # git-ignored: the page's screenshot from the browser test
CHROMIUM = Path("/usr/bin/chromium")
PAGE_URL = "http://127.0.0.1:8000"  # the TestClient's Host: the address the page is started for by default
# Debian's Chromium on a closed network: no sandbox (root in CI), and none of its own connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory, trained_job):
    """A store of this module's own with the shared ratio job on the embedded data, registered as the anchor's champion."""
    trained = store_with_trained_job(trained_job, tmp_path_factory.mktemp("web"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
        run_id = trained["model_uri"].split("/")[1]
        register_job(run_id, compose_train().registry.alias)
    yield trained
    mlflow.set_tracking_uri(None)  # the app pointed MLflow at this store; later modules choose their own


@pytest.fixture
def tracking(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return store


@pytest.fixture
def client(tracking):
    """The page's app over the champion, as ``python -m profcast.web`` builds it."""
    with TestClient(build_app(None), base_url=PAGE_URL) as test_client:
        yield test_client


def post_profile(client, content: bytes, name: str | None = "profile.csv", **query):
    params = {"anchor": ANCHOR, **({"name": name} if name is not None else {}), **query}
    return client.post("/api/forecast", params=params, content=content)


def cli_output(capsys, monkeypatch, folder: Path, profile_name: str, *extra) -> tuple[int, str, str]:
    """``python -m profcast.predict`` run in ``folder`` on ``profile_name`` (as a user names it there)."""
    monkeypatch.chdir(folder)
    code = exit_code(predict_main, ["--profile", profile_name, "--anchor", ANCHOR, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_rows(stdout: str) -> list[tuple[str, str]]:
    """(instance, batch latency cell) per ranked row of the CLI's table, in rank order."""
    return re.findall(r"^\s+\d+\s+(\S+)\s.*?\s(\d+\.\d\d ms)\s", stdout, flags=re.MULTILINE)


# ---- the API ---------------------------------------------------------------------------------------


def test_the_ranking_equals_the_cli_and_recommends_dataframe(client, capsys, monkeypatch):
    answer = post_profile(client, EXAMPLE.read_bytes(), name=EXAMPLE.name)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    code, stdout, _ = cli_output(capsys, monkeypatch, EXAMPLE.parent, EXAMPLE.name)
    assert code == 0
    # The same rows, in the same order, with the same cells as the CLI prints.
    assert [(cells[1], cells[4]) for cells in body["cells"]] == cli_rows(stdout)
    assert sorted(cells[1] for cells in body["cells"]) == sorted(TARGETS + [ANCHOR])
    # The numbers behind them are recommend's DataFrame, column for column.
    model, uri = load_job_model(None, ANCHOR, compose_train().registry.alias)
    expected = forecast(model, uri, read_anchor_profile(EXAMPLE, ANCHOR), ANCHOR).table
    assert [row["instance"] for row in body["rows"]] == list(expected["instance"])
    assert [row["batch_latency_s"] for row in body["rows"]] == list(expected["batch_latency_s"])
    assert [body["header"], body["cells"]] == list(shown_header_and_cells(expected))
    downloaded = pd.read_csv(io.StringIO(body["csv"]))
    assert list(downloaded["rank"]) == list(range(1, len(expected) + 1))
    pd.testing.assert_frame_equal(downloaded.drop(columns="rank"), expected, check_dtype=False)
    # What the model stands on: the CLI's lines, the generated-data warning, the anchor's measurement.
    assert f"profile: {body['profile']}" in stdout and f"model:   {body['model']}" in stdout
    assert f"trained on: {body['trained_on']}" in stdout and f"warning: {body['warning']}" in stdout
    assert body["generated_data"] is True and "generated data" in body["warning"]
    assert body["epoch"] == "50,000 samples / batch 64 = 782 steps" and f"epoch:   {body['epoch']}" in stdout
    measured = pd.read_csv(EXAMPLE)["batch_latency"].iloc[0]
    assert body["measured"] == f"{measured * 1000:.2f} ms per step on {ANCHOR} at batch 64"
    assert body["whatif"] is None and body["profiled"] is None
    assert [f"note: {note}" for note in body["notes"]] == re.findall(r"^note: .*$", stdout, flags=re.MULTILINE)


def test_a_batch_size_what_if_ranks_at_that_size_beside_the_profiled_one(client, capsys, monkeypatch):
    at_profiled = post_profile(client, EXAMPLE.read_bytes(), name=EXAMPLE.name).json()
    whatif = post_profile(client, EXAMPLE.read_bytes(), name=EXAMPLE.name, batchsize=128).json()
    code, stdout, _ = cli_output(capsys, monkeypatch, EXAMPLE.parent, EXAMPLE.name, "--batchsize", "128")
    assert code == 0
    assert [(cells[1], cells[4]) for cells in whatif["cells"]] == cli_rows(stdout)
    assert whatif["whatif"] == "batch size 128" and whatif["epoch"] == "50,000 samples / batch 128 = 391 steps"
    # The anchor was measured at batch 64: not ranked at 128, as in the CLI.
    assert ANCHOR not in [row["instance"] for row in whatif["rows"]]
    profiled_by_instance = {cells[1]: cells[4] for cells in at_profiled["cells"]}
    assert whatif["profiled"] == [profiled_by_instance[cells[1]] for cells in whatif["cells"]]
    for row in whatif["rows"]:  # a bigger batch takes longer per step; epoch time is 391 of them
        assert row["batch_latency_s"] > row["profiled_latency_s"]
        assert row["epoch_s"] == pytest.approx(391 * row["batch_latency_s"])


def bad_files(folder: Path):
    """(file name, content, words) for kinds of bad upload the CLI refuses."""
    rows = EXAMPLE.read_text().splitlines()
    yield "profile.json", b"{op: 1", "not valid JSON"
    yield "negative.json", json.dumps([{"Device_Conv2D": 100.0, "Host_IDLE": -5}]).encode(), "is negative"
    yield "unknown.json", json.dumps([{"Device_Warp_Drive": 100.0}]).encode(), "no known op column"
    yield "profile.txt", b"Device_Conv2D 5\n", "holds no rows"
    other = rows[0] + "\n" + rows[1].replace(ANCHOR, "p2.xlarge")
    yield "other.csv", other.encode(), "no row was profiled on the anchor g3s.xlarge"
    # A gzipped PyTorch trace, sent as bytes: read (its ops add up), then refused as far outside the training data.
    trace = (
        REPO
        / "tests"
        / "data"
        / "torch_traces"
        / "runs"
        / "exp1"
        / "cpu1t"
        / "synthetic-bnconvnet-sgd-16.pt.trace.json.gz"
    )
    yield trace.name, trace.read_bytes(), "outside what this model can answer"


def test_a_bad_file_gets_the_clis_one_line(client, tmp_path, capsys, monkeypatch):
    for name, content, words in bad_files(tmp_path):
        (tmp_path / name).write_bytes(content)
        code, stdout, stderr = cli_output(capsys, monkeypatch, tmp_path, name)
        assert code == 2 and stderr.startswith("profcast: error: "), name
        answer = post_profile(client, content, name=name)
        assert answer.status_code == 400, name
        error = answer.json()["error"]
        assert error == stderr.strip().removeprefix("profcast: error: "), name
        assert words in error and "\n" not in error and "profcast-upload-" not in error, name


def test_requests_the_page_refuses_in_one_line(client):
    cases = [
        ({"anchor": "p2.xlarge"}, "no model registered as profcast-p2.xlarge@champion"),
        ({"anchor": ""}, "pick the anchor"),
        ({"batchsize": "many"}, "--batchsize 'many' is not a whole number"),
        ({"batchsize": "0"}, "--batchsize 0 is not a positive integer"),
        ({"dataset_size": "-5"}, "--dataset-size -5 is not a positive number of samples"),
    ]
    for query, words in cases:  # a JSON profile: it names no instance, so any anchor reads it
        answer = post_profile(client, example_json(), name="profile.json", **query)
        assert answer.status_code == 400 and words in answer.json()["error"], (query, answer.text)
    empty = post_profile(client, b"  \n", name="empty.csv")
    assert empty.status_code == 400 and "the upload is empty" in empty.json()["error"]


def test_an_upload_over_the_limit_is_refused_before_it_is_read(client, monkeypatch):
    monkeypatch.setenv("PROFCAST_MAX_REQUEST_BYTES", "1000")
    content = EXAMPLE.read_bytes()
    assert len(content) > 1000
    answer = post_profile(client, content, name=EXAMPLE.name)
    assert answer.status_code == 413
    assert "over the limit of 1000 bytes (PROFCAST_MAX_REQUEST_BYTES=1000)" in answer.json()["error"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for start in range(0, len(content), 256):
            yield content[start : start + 256]

    streamed = client.post("/api/forecast", params={"anchor": ANCHOR, "name": EXAMPLE.name}, content=chunks())
    assert streamed.status_code == 413 and "PROFCAST_MAX_REQUEST_BYTES=1000" in streamed.json()["error"]
    monkeypatch.setenv("PROFCAST_MAX_REQUEST_BYTES", str(len(content)))  # exactly the limit is accepted
    assert post_profile(client, content, name=EXAMPLE.name).status_code == 200


def test_nothing_uploaded_is_kept_and_no_client_path_is_opened(client, tmp_path, monkeypatch):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(uploads))
    assert post_profile(client, EXAMPLE.read_bytes(), name=EXAMPLE.name).status_code == 200
    assert post_profile(client, b"{op: 1", name="bad.json").status_code == 400
    # A path for a name: only its last part names the upload; the server's own file is never read.
    hostile = post_profile(client, b"hello,world\n1,2\n", name="../../../etc/passwd")
    assert hostile.status_code == 400
    error = hostile.json()["error"]
    assert error.startswith("passwd: content of no known kind (first line 'hello,world')"), error
    assert list(uploads.iterdir()) == []


def test_pasted_text_is_read_by_its_content():
    assert safe_file_name(None, b'  [{"Device_Conv2D": 1}]') == "pasted.json"
    assert safe_file_name("", b"Device_Conv2D,batchsize\n1,64\n") == "pasted.csv"
    assert safe_file_name("C:\\Users\\me\\run 1.pt.trace.json.gz", b"") == "run_1.pt.trace.json.gz"
    assert safe_file_name("../..", b"{}") == "pasted.json"  # nothing left of the name
    assert safe_file_name(".hidden.csv", b"") == "hidden.csv"


def example_json() -> bytes:
    """The example profile's op times as a JSON object (no instance, no measured latency)."""
    profile = read_anchor_profile(EXAMPLE, ANCHOR)
    ops = {op: float(value) for op, value in profile.profile.iloc[0].items() if op.startswith(("Device_", "Host_"))}
    return json.dumps([{**ops, "batchsize": 64}]).encode()


def test_pasted_json_is_forecast(client):
    answer = post_profile(client, example_json(), name=None)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["profile"].startswith("pasted.json (JSON profile")
    assert sorted(row["instance"] for row in body["rows"]) == sorted(TARGETS)  # no measured latency: no anchor row


def test_the_anchors_offered_are_the_stores_champions(client, tmp_path, monkeypatch):
    info = client.get("/api/anchors").json()
    assert info["anchors"] == [ANCHOR] and info["max_upload"] == "16 MiB" and info["model"] is None
    page = client.get("/")
    assert page.status_code == 200 and 'id="ranking"' in page.text
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from the network
    missing = tmp_path / "none" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with TestClient(build_app(None), base_url=PAGE_URL) as empty:
        assert empty.get("/api/anchors").json()["anchors"] == []
    assert not missing.exists()  # looking made no store


def test_a_given_model_fixes_the_anchor(tracking):
    with TestClient(build_app(tracking["model_uri"]), base_url=PAGE_URL) as fixed:
        assert fixed.get("/api/anchors").json()["anchors"] == [ANCHOR]
        other = post_profile(fixed, example_json(), name="profile.json", anchor="p2.xlarge")
        assert other.status_code == 400 and "predicts from profiles taken on g3s.xlarge, not p2.xlarge" in other.text
        assert post_profile(fixed, EXAMPLE.read_bytes(), name=EXAMPLE.name).json()["model"].startswith("runs:/")


def test_it_listens_on_this_machine_only_unless_told(monkeypatch):
    import uvicorn

    from profcast.web import __main__ as command

    assert DEFAULT_HOST == "127.0.0.1" and parse_args([]).host == "127.0.0.1"
    started = {}
    monkeypatch.setattr(command, "build_app", lambda *args: "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    assert command.main(["--port", "8123"]) == 0
    assert started["host"] == "127.0.0.1" and started["port"] == 8123
    assert command.main(["--host", "0.0.0.0"]) == 0 and started["host"] == "0.0.0.0"


# ---- the page in a real browser --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def page_url(tracking):
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread of this process."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(build_app(None), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the page's server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}/"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def browser_page(request):
    """A headless Chromium tab (Debian's, driven by Playwright) on the page, with its anchors loaded."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    page_url = request.getfixturevalue("page_url")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            page.set_default_timeout(120_000)  # a loaded 2-core CI machine: generous, never a measurement
            page.console_errors = []  # what the browser's console would show a user in red (a 404, a JS error)
            page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
            page.on("pageerror", lambda error: page.console_errors.append(str(error)))
            page.goto(page_url)
            page.wait_for_function("document.getElementById('anchor').options.length > 0")
            yield page
        finally:
            browser.close()


def wait_for_answer(page, previous: int | None = None) -> str:
    """Wait until the page shows a forecast or an error (a newer one than ``previous`` asked); its state."""
    page.wait_for_function(
        "(asked) => ['ready', 'error'].includes(document.body.dataset.state) && document.body.dataset.asked > asked",
        arg=previous if previous is not None else 0,
    )
    return page.evaluate("document.body.dataset.state")


def shown_column(page, column: str) -> list[str]:
    return page.locator(f"#ranking tbody td[data-col='{column}']").all_inner_texts()


def test_the_page_ranks_an_uploaded_profile_as_the_cli_does(browser_page, capsys, monkeypatch):
    page = browser_page
    page.set_input_files("#file", str(EXAMPLE))
    # While the first forecast loads the model, something moves: the busy line with its seconds.
    page.wait_for_function("document.body.dataset.state === 'busy'")
    assert page.locator("#busy").is_visible() and "Forecasting" in page.locator("#busy").inner_text()
    assert wait_for_answer(page) == "ready"
    assert not page.locator("#busy").is_visible()
    code, stdout, _ = cli_output(capsys, monkeypatch, EXAMPLE.parent, EXAMPLE.name)
    assert code == 0
    assert list(zip(shown_column(page, "instance"), shown_column(page, "batch latency"))) == cli_rows(stdout)
    assert page.locator("#ranking tbody tr.anchor td[data-col='instance']").inner_text() == ANCHOR
    assert len(page.locator("#ranking tbody svg").all()) == len(TARGETS) + 1  # an error-bar chart per row
    assert page.locator("#ranking tbody svg line.whisker").count() == 3 * len(TARGETS)  # the measured row has none
    # One log scale: an axis with labelled decades, and no bar too short to see or compare.
    ticks = page.locator("#ranking th[data-col='chart'] svg text.tick").all_text_contents()
    decades = [tick for tick in ticks if "log scale" not in tick]
    assert len(decades) == len(ticks) - 1 >= 2 and all(re.fullmatch(r"[\d.]+ m?s", tick) for tick in decades), ticks
    widths = [
        float(width)
        for width in page.locator("#ranking tbody svg rect").evaluate_all("rs => rs.map(r => r.getAttribute('width'))")
    ]
    assert min(widths) >= 20, widths
    labels = page.locator("#ranking tbody svg text.value").all_text_contents()
    assert len(labels) == len(TARGETS) + 1 and all(label.endswith("ms") or label.endswith(" s") for label in labels)
    assert page.locator("#banner").is_visible() and "generated data" in page.locator("#banner").inner_text()
    assert "anchor, measured:" in page.locator("#measured-line").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "forecast-page.png"), full_page=True)

    # The CSV download is the ranking shown.
    with page.expect_download() as download:
        page.click("#download")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [row["instance"] for row in rows] == shown_column(page, "instance")

    # The what-if: another batch size, without a new upload.
    asked = int(page.evaluate("document.body.dataset.asked"))
    page.fill("#batchsize", "128")
    page.click("#reforecast")
    assert wait_for_answer(page, asked) == "ready"
    code, whatif_stdout, _ = cli_output(capsys, monkeypatch, EXAMPLE.parent, EXAMPLE.name, "--batchsize", "128")
    assert code == 0
    assert list(zip(shown_column(page, "instance"), shown_column(page, "batch latency"))) == cli_rows(whatif_stdout)
    assert "what-if: batch size 128" in page.locator("#ranking th[data-col='batch latency']").inner_text()
    at_profiled = dict(cli_rows(stdout))
    assert shown_column(page, "at profiled size") == [at_profiled[name] for name in shown_column(page, "instance")]
    assert "391 steps" in page.locator("#epoch-line").inner_text()
    page.screenshot(path=str(ARTIFACTS / "forecast-page-whatif.png"), full_page=True)
    assert page.console_errors == []  # no 404 (the favicon), no script error


def test_the_page_shows_a_bad_files_one_line_error(browser_page, tmp_path, capsys, monkeypatch):
    page = browser_page
    bad = tmp_path / "profile.json"
    bad.write_text("{op: 1")
    page.set_input_files("#file", str(bad))
    assert wait_for_answer(page) == "error"
    code, _, stderr = cli_output(capsys, monkeypatch, tmp_path, bad.name)
    assert code == 2
    assert page.locator("#error").inner_text() == stderr.strip().removeprefix("profcast: error: ")
    assert not page.locator("#results").is_visible()  # no ranking left that looks like an answer
    # A good file afterwards clears the error.
    asked = int(page.evaluate("document.body.dataset.asked"))
    page.set_input_files("#file", str(EXAMPLE))
    assert wait_for_answer(page, asked) == "ready"
    assert not page.locator("#error").is_visible() and page.locator("#results").is_visible()
    # Pasted text is a profile too.
    asked = int(page.evaluate("document.body.dataset.asked"))
    page.click("#paste-box summary")
    page.fill("#paste", example_json().decode())
    page.click("#use-paste")
    assert wait_for_answer(page, asked) == "ready"
    assert page.locator("#profile-line").inner_text().startswith("profile: pasted.json (JSON profile")
    assert sorted(shown_column(page, "instance")) == sorted(TARGETS)


@pytest.mark.integration
def test_the_page_plans_a_distributed_run_as_the_cli_does(browser_page, capsys):
    """One plan and one search from the page's "Plan a distributed run", the numbers ``profcast plan`` prints."""
    page = browser_page
    page.wait_for_function(
        "document.getElementById('plan-gpu').options.length > 0 || document.getElementById('plan-gpu-note').textContent"
    )
    gpus = page.locator("#plan-gpu option").all_inner_texts()
    if "h100_sxm" not in gpus:
        pytest.skip("no AIConfigurator systems under ../shared/data: the page offers no GPU with a node")
    page.select_option("#plan-model", "gpt2-large")
    page.select_option("#plan-gpu", "h100_sxm")
    page.click("#plan-run")
    page.wait_for_function("document.getElementById('plan-result').textContent.includes('step time')")
    gpu = REPO.parent / "shared" / "data" / "aiconfigurator" / "systems" / "h100_sxm.yaml"
    argv = ["--model", str(REPO / "examples/models/gpt2-large/config.json"), "--gpu", str(gpu), "--gpus", "8"]
    argv += ["--tp", "2", "--pp", "2", "--dp", "2", "--micro-batch", "1", "--global-batch", "16", "--seq", "1024"]
    assert plan_main([*argv, "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    shown = page.locator("#plan-result").inner_text()
    assert f"{expected['step_ms']:.1f} ms" in shown and f"{100 * expected['mfu']:.1f} %" in shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#plan").screenshot(path=str(ARTIFACTS / "plan-one.png"))
    page.click("#plan-search")
    page.wait_for_function("document.querySelectorAll('#plan-result table tr').length > 1")
    assert page.locator("#plan-result p").inner_text().split()[0].isdigit()
    page.locator("#plan").screenshot(path=str(ARTIFACTS / "plan-search.png"))
    assert page.console_errors == []


def test_the_docs_show_the_page():
    """The README shows the page: a real PNG of it (made by the browser test above) and the one command."""
    shown = REPO / "docs" / "images" / "forecast-page.png"
    assert shown.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shown.stat().st_size > 20_000
    readme = (REPO / "README.md").read_text()
    assert "docs/images/forecast-page.png" in readme and "profcast web" in readme
