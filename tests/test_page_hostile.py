"""Hostile requests to the forecast page, each answered with one clear refusal and nothing lost.

In process with FastAPI's TestClient over a page whose champions hold no model: every case here must
be refused before a model is needed (the ranking itself is tests/test_web.py's). After each case the
page still answers, no upload is left on disk and no place in the worker pool is held.
docs/web.md's table of hostile cases lists these.
"""

import functools
import gzip
import io
import json
import os
import re
import sys
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from profcast.errors import ProfcastError
from profcast.limits import CappedReader, ClientGone, OverBudget, WorkBudget, shown_bytes, spending, upload_budget
from profcast.web.app import create_app
from profcast.web.guard import allowed_host_names, host_name
from profcast.web.workers import ForecastWorkers

ANCHOR = "g3s.xlarge"
PAGE = "http://127.0.0.1:8000"
MiB = 1024**2


class NoModels:
    """Champions for an anchor with no model behind it: reaching ``model`` means a refusal came too late."""

    model_uri, alias, fixed_anchor = None, "champion", None

    def anchors(self) -> list[str]:
        return [ANCHOR]

    def model(self, anchor):
        raise AssertionError("a hostile request reached the model")


@pytest.fixture
def page(tmp_path, monkeypatch):
    """The page's app (a pool of 2 workers and 2 queue places), its uploads under ``tmp_path``."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    workers = ForecastWorkers(workers=2, queue=2)
    with TestClient(create_app(NoModels(), allowed_host_names("127.0.0.1"), workers), base_url=PAGE) as client:
        client.workers = workers
        yield client
    assert list(tmp_path.iterdir()) == []  # nothing uploaded is kept, whatever the request was


@functools.cache
def bomb(text_bytes: int = 1024 * MiB) -> bytes:
    """A gzip of ``text_bytes`` zeros, about 1000 times smaller: one 16 MiB member repeated (gzip readers
    read the members of a file one after the other, as ``cat a.gz b.gz`` makes them)."""
    member = gzip.compress(b"0" * (16 * MiB), compresslevel=9)
    return member * (text_bytes // (16 * MiB))


def nul_bytes(count: int = 4096) -> bytes:
    return b"\0" * count


GOOD_JSON = json.dumps([{"Device_Conv2D": 812.5, "batchsize": 64}]).encode()
DIGITS_400 = "9" * 400

# (case, query, headers, body, status, words in the one-line answer)
HOSTILE_REQUESTS = [
    ("gzip bomb as a trace", {"name": "run.pt.trace.json.gz"}, {}, bomb, 413, "as a compression bomb does"),
    ("gzip bomb as a table", {"name": "table.csv.gz"}, {}, bomb, 413, "as a compression bomb does"),
    ("gzip bomb without a name", {}, {}, bomb, 413, "as a compression bomb does"),
    ("another site's name (DNS rebinding)", {}, {"host": "attacker.example:8000"}, GOOD_JSON, 400, "not an address"),
    ("a rebinding name for 127.0.0.1", {}, {"host": "127.0.0.1.nip.io:8000"}, GOOD_JSON, 400, "not an address"),
    ("a Host whose port is no number", {}, {"host": "127.0.0.1:80x"}, GOOD_JSON, 400, "not an address"),
    ("no Host at all", {}, {"host": ""}, GOOD_JSON, 400, "not an address"),
    ("a POST from another origin", {}, {"origin": "http://attacker.example"}, GOOD_JSON, 403, "is refused"),
    ("a POST from another port", {}, {"origin": "http://127.0.0.1:9999"}, GOOD_JSON, 403, "is refused"),
    ("a POST from a sandboxed page (Origin null)", {}, {"origin": "null"}, GOOD_JSON, 403, "is refused"),
    ("a cross-site fetch", {}, {"sec-fetch-site": "cross-site"}, GOOD_JSON, 403, "Sec-Fetch-Site: cross-site"),
    ("a batch size of 400 digits", {"batchsize": DIGITS_400}, {}, GOOD_JSON, 400, "(400 characters) is larger than"),
    ("samples per epoch 0", {"dataset_size": "0"}, {}, GOOD_JSON, 400, "--dataset-size 0 is not a positive"),
    ("samples per epoch past a trillion", {"dataset_size": "10000000000000"}, {}, GOOD_JSON, 400, "is larger than"),
    ("an input size in float notation", {"input_size": "1e3"}, {}, GOOD_JSON, 400, "'1e3' is not a whole number"),
    ("a negative batch size", {"batchsize": "-64"}, {}, GOOD_JSON, 400, "--batchsize -64 is not a positive"),
    ("a batch size past 2**20", {"batchsize": str(2**20 + 1)}, {}, GOOD_JSON, 400, "larger than 1,048,576"),
    ("a file of NUL bytes", {"name": "profile.csv"}, {}, nul_bytes(), 400, "content of no known kind"),
    ("NUL bytes named JSON", {"name": "profile.json"}, {}, nul_bytes(), 400, "not valid JSON"),
    ("NUL bytes named gzip", {"name": "profile.json.gz"}, {}, nul_bytes(), 400, "content of no known kind"),
    ("NUL bytes in the anchor", {"anchor": "g3s.xlarge\0"}, {}, GOOD_JSON, 400, "not a plain instance name"),
    ("a formula for the anchor", {"anchor": '=HYPERLINK("http://x")'}, {}, GOOD_JSON, 400, "not a plain instance"),
    ("a path for the anchor", {"anchor": "../../etc"}, {}, GOOD_JSON, 400, "not a plain instance name"),
    ("a path for the file's name", {"name": "../../etc/passwd"}, {}, b"a,b\n1,2\n", 400, "passwd: content of no"),
]


@pytest.mark.parametrize(
    "query, headers, body, status, words", [case[1:] for case in HOSTILE_REQUESTS], ids=[c[0] for c in HOSTILE_REQUESTS]
)
def test_a_hostile_request_is_refused_in_one_line_and_nothing_is_lost(page, query, headers, body, status, words):
    body = body() if callable(body) else body
    answer = page.post("/api/forecast", params={"anchor": ANCHOR, **query}, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error, error
    assert "profcast-upload-" not in error  # the server's own folder is never named
    assert page.workers.admitted == 0  # its place in the pool was given back
    assert page.get("/api/anchors").json()["anchors"] == [ANCHOR]  # and the page goes on answering


def test_a_bomb_is_stopped_after_16_mib_of_text_not_after_unpacking_it(page):
    """1 GiB of zeros in ~1 MB: stopped once its text passes 16 MiB at over 100x the bytes it consumed."""
    answer = page.post("/api/forecast", params={"anchor": ANCHOR, "name": "t.json.gz"}, content=bomb())
    assert answer.status_code == 413
    unpacked = re.search(r"\(([\d.]+) MiB of text from", answer.json()["error"])
    assert unpacked and 16 < float(unpacked[1]) < 20, answer.json()["error"]


def test_an_upload_unpacking_past_the_pages_text_limit_is_stopped_there(page, monkeypatch):
    """Text that compresses like a real trace (not a bomb), but more of it than the page unpacks: 413."""
    monkeypatch.setenv("PROFCAST_MAX_UPLOAD_TEXT_BYTES", str(MiB))
    rows = "".join(f'{{"name": "aten::conv2d", "ts": {i * 37}, "dur": {i % 977}}},\n' for i in range(60_000))
    upload = gzip.compress(rows.encode())
    assert 2 * MiB < len(rows) < 20 * len(upload)  # about 10:1, as real traces
    answer = page.post("/api/forecast", params={"anchor": ANCHOR, "name": "t.json.gz"}, content=upload)
    assert answer.status_code == 413
    assert f"more than {shown_bytes(MiB)} of text once decompressed" in answer.json()["error"]
    assert upload_budget(len(upload)).text_bytes == MiB  # the page's cap, below 50x the upload


def test_a_get_under_another_host_is_refused_and_the_page_itself_is_served(page):
    assert page.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert page.get("/", headers={"host": "localhost:8000"}).status_code == 200
    same_origin = page.post(
        "/api/forecast",
        params={"anchor": ANCHOR, "name": "p.csv"},
        content=nul_bytes(),
        headers={"origin": PAGE, "sec-fetch-site": "same-origin"},
    )
    assert same_origin.status_code == 400 and "content of no known kind" in same_origin.text  # past the guard


def test_a_full_pool_answers_503_with_retry_after(page):
    page.workers.admitted = page.workers.capacity  # every worker and queue place taken
    answer = page.post("/api/forecast", params={"anchor": ANCHOR, "name": "p.json"}, content=GOOD_JSON)
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert "the page is busy" in answer.json()["error"]
    page.workers.admitted = 0
    answer = page.post("/api/forecast", params={"anchor": ANCHOR, "name": "p.csv"}, content=nul_bytes())
    assert answer.status_code == 400  # a place free: served again


def test_the_pool_runs_no_more_than_its_workers_at_once():
    import asyncio
    import threading

    workers, running, most = ForecastWorkers(workers=2, queue=5), [0], [0]
    lock = threading.Lock()

    def work():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return "done"

    async def many():
        admitted = [workers.admit() for _ in range(8)]
        assert admitted == [True] * 7 + [False]  # 2 workers + 5 queue places
        results = await asyncio.gather(*(workers.run(Connected(), WorkBudget(MiB, 10), work) for _ in range(7)))
        return results

    assert asyncio.run(many()) == ["done"] * 7 and most[0] == 2
    workers.shutdown()


def test_work_stops_when_the_client_leaves():
    budget = WorkBudget(text_bytes=10 * MiB, cpu_seconds=60)
    with spending(budget):
        reader = CappedReader(io.BytesIO(b"x" * (4 * MiB)), "upload")
        assert len(reader.read(MiB)) == MiB
        budget.cancel()  # the client closed the connection
        with pytest.raises(ClientGone):
            reader.read(MiB)


def test_work_stops_past_its_cpu_seconds():
    budget = WorkBudget(text_bytes=10**12, cpu_seconds=0.05)
    with spending(budget), pytest.raises(OverBudget, match="more than 0.05 CPU seconds"):
        reader = CappedReader(io.BytesIO(b"x" * (64 * MiB)), "upload")
        while reader.read(64 * 1024):
            sum(range(20_000))  # parsing work between reads
    assert isinstance(OverBudget("x"), ProfcastError)  # a user-facing one line, as every refusal


def test_a_read_outside_a_request_has_no_budget():
    reader = CappedReader(io.BytesIO(b"x" * (3 * MiB)), "file")
    assert reader.budget is None and len(reader.read()) == 3 * MiB  # the CLI reads as before


def test_the_addresses_the_page_answers():
    assert {"127.0.0.1", "localhost", "::1"} <= allowed_host_names("127.0.0.1")
    assert "attacker.example" not in allowed_host_names("127.0.0.1")
    assert "proxy.example" in allowed_host_names("127.0.0.1", ("Proxy.Example",))
    assert allowed_host_names("10.1.2.3") == {"10.1.2.3"}  # one interface: only its address
    assert host_name("[::1]:8000") == "::1" and host_name("LOCALHOST") == "localhost"
    assert host_name("127.0.0.1:x") == "" and host_name("") == ""


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--dataset-size", DIGITS_400, "(400 characters) is larger than 1,000,000,000,000"),
        ("--batchsize", "9" * 5000, "(5000 characters) is larger than 1,048,576"),  # past int()'s 4300 digits
        ("--input-size", "1e400", "'1e400' is not a whole number"),
        ("--dataset-size", "0", "--dataset-size 0 is not a positive number of samples"),
    ],
)
def test_src_predict_refuses_the_same_numbers_in_one_line(option, value, words, tmp_path, capsys):
    """The page's rule is the CLI's: no OverflowError traceback from a number with hundreds of digits."""
    from profcast.cli import exit_code
    from profcast.predict import main as predict_main

    profile = tmp_path / "p.json"
    profile.write_bytes(GOOD_JSON)
    assert exit_code(predict_main, ["--profile", str(profile), "--anchor", ANCHOR, option, value]) == 2
    error = capsys.readouterr().err
    assert error.startswith("profcast: error: ") and words in error and error.count("\n") == 1, error


class Connected:
    """A request whose client stays (``gone``: one that has left)."""

    def __init__(self, gone: bool = False):
        self.gone = gone

    async def is_disconnected(self) -> bool:
        return self.gone


def test_compressed_uploads_run_one_at_a_time_on_a_thread_of_their_own():
    import asyncio
    import threading

    workers, lock = ForecastWorkers(workers=2, queue=8), threading.Lock()
    running, most = Counter(), Counter()

    def work(kind):
        if kind == "gz" and sys.platform == "linux":  # the bombs' thread yields the CPU to every other
            assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 19
        with lock:
            running[kind] += 1
            most[kind] = max(most[kind], running[kind])
            most["both"] = max(most["both"], running["gz"] + running["plain"])
        time.sleep(0.05)
        with lock:
            running[kind] -= 1
        return kind

    async def mixed():
        calls = [
            workers.run(Connected(), WorkBudget(MiB, 10), work, kind, compressed=kind == "gz")
            for kind in ["gz", "gz", "gz", "plain", "plain", "plain"]
        ]
        return await asyncio.gather(*calls)

    assert sorted(asyncio.run(mixed())) == ["gz"] * 3 + ["plain"] * 3
    assert most["gz"] == 1 and most["plain"] == 2  # bombs one at a time; both workers stay for plain uploads
    workers.shutdown()


def test_a_request_whose_client_left_while_queued_is_dropped_before_it_runs():
    import asyncio
    import threading

    workers, release, ran = ForecastWorkers(workers=1, queue=4), threading.Event(), []

    def blocker():
        release.wait(10)
        return "blocker"

    async def scenario():
        busy = asyncio.ensure_future(workers.run(Connected(), WorkBudget(MiB, 10), blocker))
        await asyncio.sleep(0.05)  # the only worker is taken
        with pytest.raises(ClientGone):
            await workers.run(Connected(gone=True), WorkBudget(MiB, 10), ran.append, "queued work")
        release.set()
        return await busy

    assert asyncio.run(scenario()) == "blocker" and ran == []  # the left request's work never ran
    workers.shutdown()


def test_a_real_gzipped_trace_is_read_under_the_budget(tmp_path, monkeypatch):
    from profcast.web.uploads import read_uploaded_profile
    from tests.test_torch_trace import CPU_TRACES

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    content = CPU_TRACES[0].read_bytes()
    with spending(upload_budget(len(content))):
        profile, shown = read_uploaded_profile(content, CPU_TRACES[0].name, ANCHOR)
    assert shown == CPU_TRACES[0].name and profile.kind == "PyTorch profiler trace" and profile.profile.size > 0
