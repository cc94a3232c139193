"""The reference suite collector: its order, resume, out of memory, failures, stops, and peak memory in traces."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from profcast.cli import exit_code
from profcast.collect.manifest import DIED_INSIDE, SUITE_MANIFEST, Manifest
from profcast.collect.runner import run_suite
from profcast.collect.suites import load_suites, suite_workloads
from profcast.collect.workload import OutOfMemory
from profcast.errors import ProfcastError
from profcast.ingest.profile_files import read_profile_tree
from profcast.ingest.tables import validate_profiles
from profcast.ingest.torch_trace import read_torch_trace
from profcast.schema import PEAK_MEMORY, op_columns

torch = pytest.importorskip("torch")

MACHINE = {"device": {"kind": "cpu", "name": "test CPU", "count": 1, "memory_bytes": 2**33}}


@pytest.fixture(scope="module")
def template_trace(tmp_path_factory):
    """One real trace of a tiny training step, recorded with memory profiling, that fake runs copy."""
    from profcast.collect.steps import record_trace

    model = torch.nn.Linear(16, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.randn(4, 16)

    def step():
        optimizer.zero_grad()
        model(inputs).sum().backward()
        optimizer.step()

    path = tmp_path_factory.mktemp("template") / "run.pt.trace.json.gz"
    record_trace(step, path, steps=1, warmup=0, wait=0, profile_memory=True, resident_bytes=1000)
    return path


class FakeRuns:
    """A stand-in for run_workload: copies the template trace, or raises what ``outcomes[name]`` says."""

    def __init__(self, template, outcomes=None):
        self.template, self.outcomes, self.calls = template, outcomes or {}, []

    def __call__(self, workload, path, device):
        self.calls.append(workload.name)
        outcome = self.outcomes.get(workload.name)
        if outcome is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half a trace")  # what a crash mid-write could leave: must not survive
            raise outcome
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.template, path)


def smoke():
    return suite_workloads("smoke", load_suites())


def manifest_of(folder):
    return json.loads((folder / "suite" / "cpu" / SUITE_MANIFEST).read_text())


def suite_in(folder, runs, **options):
    return run_suite("smoke", smoke(), folder, "cpu", "cpu", MACHINE, run=runs, **options)


# ---- the suites ---------------------------------------------------------------------------------------


def test_every_network_runs_once_first_then_the_grid_cheapest_first():
    workloads = suite_workloads("cnn", load_suites())
    settings = load_suites()["cnn"]
    networks = settings["networks"]

    first = workloads[: len(networks)]
    assert [w.network.name for w in first] == networks
    assert {(w.batchsize, w.input_size, w.optimizer) for w in first} == {
        (min(settings["batch_sizes"]), min(settings["image_sizes"]), "sgd")
    }
    rest = workloads[len(networks) :]
    assert [w.cost for w in rest] == sorted(w.cost for w in rest)
    grid = len(networks) * len(settings["batch_sizes"]) * len(settings["image_sizes"]) * len(settings["optimizers"])
    assert len({w.name for w in workloads}) == len(workloads) == grid


def test_all_holds_every_included_suite_once():
    suites = load_suites()
    names = {w.name for w in suite_workloads("all", suites)}
    assert names == {w.name for part in ("cnn", "transformer", "rnn") for w in suite_workloads(part, suites)}


def test_the_dataset_names_carry_the_input_size_the_whatif_reads():
    from profcast.regressors.whatif import input_size

    for workload in smoke():
        assert input_size(workload.dataset) == workload.input_size


def test_a_suites_file_adds_suites_and_bad_ones_are_refused_in_one_line(tmp_path):
    mine = tmp_path / "suites.yaml"
    mine.write_text("suites:\n  tiny: {networks: [resnet18], batch_sizes: [2], image_sizes: [16], width: 0.05}\n")
    assert [w.name for w in suite_workloads("tiny", load_suites(mine))] == ["16image-resnet18-sgd-2"]
    assert "smoke" in load_suites(mine)

    mine.write_text("suites:\n  tiny: {networks: [alexnet], batch_sizes: [2], image_sizes: [16]}\n")
    with pytest.raises(ProfcastError, match="unknown network 'alexnet'; known: resnet18"):
        load_suites(mine)
    mine.write_text("suites:\n  tiny: {networks: [resnet18], batch_sizes: [0], image_sizes: [16]}\n")
    with pytest.raises(ProfcastError, match="batch_sizes must be a list of positive integers"):
        load_suites(mine)
    with pytest.raises(ProfcastError, match="--suite nope: no such suite; known: all, cnn"):
        suite_workloads("nope", load_suites())


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50", "vgg11", "mobilenetv2", "inception", "vit", "lstm", "gpt2small"]
)
def test_every_network_trains_at_a_tiny_width(name):
    from profcast.collect.networks import NETWORKS, random_batch, training_loss

    network = NETWORKS[name]
    size = 32 if network.input_kind == "image" else 8
    model = network.build(0.05, 0.1, size)
    inputs, labels = random_batch(network, 2, size, "cpu")
    loss = training_loss(model(inputs), labels)
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in model.parameters() if p.requires_grad)


# ---- resume, budget, out of memory, failures, stops -------------------------------------------------


def test_a_second_run_skips_what_is_done_and_the_budget_stops_cleanly(tmp_path, template_trace):
    ticks = iter(range(1000))
    first = FakeRuns(template_trace)
    # Each clock reading is one minute later; the budget of 4.5 minutes allows the workloads started by then.
    result = suite_in(tmp_path, first, budget_minutes=4.5, clock=lambda: 60.0 * next(ticks))
    assert result.budget_reached and 0 < len(first.calls) < len(smoke())
    assert manifest_of(tmp_path)["stopped"] == "budget"

    second = FakeRuns(template_trace)
    result = suite_in(tmp_path, second)

    assert not set(first.calls) & set(second.calls)
    assert first.calls + second.calls == [w.name for w in smoke()]
    statuses = {name: record["status"] for name, record in manifest_of(tmp_path)["workloads"].items()}
    assert statuses == {w.name: "done" for w in smoke()}
    assert len(read_profile_tree(tmp_path).profiles) == len(smoke())  # the manifest is not read as a profile


def test_out_of_memory_is_recorded_as_not_fitting_and_the_suite_goes_on(tmp_path, template_trace):
    too_big = [w.name for w in smoke() if w.batchsize == 4]
    runs = FakeRuns(
        template_trace, {name: OutOfMemory("CUDA out of memory. Tried to allocate 2 GiB") for name in too_big}
    )

    suite_in(tmp_path, runs)

    records = manifest_of(tmp_path)["workloads"]
    assert {n for n, r in records.items() if r["status"] == "out_of_memory"} == set(too_big)
    assert all("out of memory" in records[name]["error"] for name in too_big)
    assert {n for n, r in records.items() if r["status"] == "done"} == {w.name for w in smoke()} - set(too_big)
    traces = {p.name.split(".")[0] for p in (tmp_path / "suite" / "cpu").glob("*.pt.trace.json.gz")}
    assert traces == {w.name for w in smoke()} - set(too_big)
    again = FakeRuns(template_trace)
    suite_in(tmp_path, again)
    assert again.calls == []  # an out-of-memory batch is an answer, not a failure to retry


def test_a_failing_workload_is_recorded_and_loses_nothing_else(tmp_path, template_trace):
    broken = smoke()[2].name
    suite_in(tmp_path, FakeRuns(template_trace, {broken: ValueError("shapes (2,3) and (4,5) do not match")}))

    records = manifest_of(tmp_path)["workloads"]
    assert records[broken]["status"] == "failed"
    assert records[broken]["error"] == "ValueError: shapes (2,3) and (4,5) do not match"
    assert sum(r["status"] == "done" for r in records.values()) == len(smoke()) - 1
    assert not (tmp_path / "suite" / "cpu" / f"{broken}.pt.trace.json.gz").exists()

    skipped = FakeRuns(template_trace)
    suite_in(tmp_path, skipped)
    retried = FakeRuns(template_trace)
    suite_in(tmp_path, retried, retry_failed=True)
    assert skipped.calls == [] and retried.calls == [broken]
    assert manifest_of(tmp_path)["workloads"][broken]["status"] == "done"


def test_ctrl_c_leaves_a_consistent_folder_that_a_rerun_completes(tmp_path, template_trace):
    stopped_at = smoke()[3].name
    first = FakeRuns(template_trace, {stopped_at: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        suite_in(tmp_path, first)

    content = manifest_of(tmp_path)
    assert content["stopped"] == "interrupted"
    assert [n for n, r in content["workloads"].items() if r["status"] == "done"] == sorted(first.calls[:3])
    assert content["workloads"][stopped_at]["status"] == "pending"
    folder = tmp_path / "suite" / "cpu"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [SUITE_MANIFEST, *(f"{name}.pt.trace.json.gz" for name in first.calls[:3])]
    )  # no half-written trace, no temporary file

    second = FakeRuns(template_trace)
    suite_in(tmp_path, second)
    assert second.calls == [w.name for w in smoke()][3:]


def test_a_workload_the_process_died_in_is_marked_failed_on_the_next_run(tmp_path, template_trace):
    folder = tmp_path / "suite" / "cpu"
    manifest = Manifest.open(folder, "smoke", "cpu", MACHINE)
    manifest.record(smoke()[0].name, status="running")

    runs = FakeRuns(template_trace)
    suite_in(tmp_path, runs)

    record = manifest_of(tmp_path)["workloads"][smoke()[0].name]
    assert record["status"] == "failed" and record["error"] == DIED_INSIDE
    assert smoke()[0].name not in runs.calls


def test_a_folder_of_another_machine_or_instance_is_refused(tmp_path, template_trace):
    suite_in(tmp_path, FakeRuns(template_trace))
    other = {"device": {**MACHINE["device"], "name": "NVIDIA L4"}}
    with pytest.raises(ProfcastError, match="measured on 'test CPU', this machine's device is 'NVIDIA L4'"):
        run_suite("smoke", smoke(), tmp_path, "cpu", "cuda", other, run=FakeRuns(template_trace))


def test_out_of_memory_from_torch_becomes_out_of_memory_and_other_errors_stay(tmp_path, monkeypatch):
    from profcast.collect import workload as workload_module
    from profcast.collect.networks import Network

    def failing(error):
        class Raising(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(3, 3)

            def forward(self, x):
                raise error

        return Network("raising", "cnn", "image", lambda width, depth, size: Raising())

    base = smoke()[0]
    cases = {
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"): OutOfMemory,
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"): OutOfMemory,
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"): RuntimeError,
    }
    for error, expected in cases.items():
        workload = type(base)(**{**base.__dict__, "network": failing(error)})
        with pytest.raises(expected) as raised:
            workload_module.run_workload(workload, tmp_path / "x.pt.trace.json.gz", "cpu")
        assert raised.type is expected


def test_the_command_says_an_unknown_device_in_one_line(tmp_path, capsys):
    from profcast.cli import main as profcast

    arguments = ["suite", "--suite", "smoke", "--instance", "cpu", "--out", str(tmp_path), "--device", "mps"]
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code = exit_code(profcast, ["collect", *arguments])  # `profcast collect suite ...`
    assert code == 2 and "--device mps: not available on this machine; available: " in capsys.readouterr().err
    assert not (tmp_path / "suite").exists()  # refused before anything was written
    code = exit_code(profcast, ["collect", *arguments[:-2], "--budget-minutes", "0"])
    assert code == 2 and "--budget-minutes 0.0: expected a positive number of minutes" in capsys.readouterr().err


# ---- peak memory ------------------------------------------------------------------------------------


def test_a_cpu_trace_peak_is_the_resident_bytes_plus_what_the_steps_allocate(tmp_path):
    from profcast.collect.steps import record_trace

    def step():  # allocates 1 MB, then 1 MB more while the first is alive: a 2 MB peak
        first = torch.ones(250_000)
        second = torch.empty(250_000)
        second.copy_(first)

    path = tmp_path / "run.pt.trace.json.gz"
    record_trace(step, path, steps=2, warmup=1, wait=1, profile_memory=True, resident_bytes=5_000_000)

    assert read_torch_trace(path)[PEAK_MEMORY] == pytest.approx(5_000_000 + 2_000_000, abs=4096)


def write_trace(path, memory_events, resident=None):
    """A hand-made trace: one step from 0 to 100 µs with one op, plus the given [memory] events."""
    events = [
        {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 10, "dur": 50, "pid": 1, "tid": 1},
    ]
    events += [
        {
            "ph": "i",
            "cat": "cpu_instant_event",
            "name": "[memory]",
            "ts": ts,
            "pid": 1,
            "tid": 1,
            "args": {"Total Allocated": total, "Device Type": device},
        }
        for ts, total, device in memory_events
    ]
    content = {"traceEvents": events, **({"profcast_resident_bytes": resident} if resident is not None else {})}
    with gzip.open(path, "wt") as stream:
        json.dump(content, stream)
    return path


def test_the_peak_is_the_accelerators_when_there_is_one_and_counts_only_the_steps(tmp_path):
    cpu_only = write_trace(tmp_path / "a.json.gz", [(5, 900, 0), (20, 300, 0), (150, 10_000, 0)], resident=1000)
    assert read_torch_trace(cpu_only)[PEAK_MEMORY] == 1000 + 900  # the 10,000 falls after the step

    gpu = write_trace(tmp_path / "b.json.gz", [(5, 900, 0), (20, 7_000, 1), (30, 6_000, 1)], resident=1000)
    assert read_torch_trace(gpu)[PEAK_MEMORY] == 7_000  # the device's own total; the host's resident bytes are not its

    without = write_trace(tmp_path / "c.json.gz", [])
    assert PEAK_MEMORY not in read_torch_trace(without)


def test_peak_memory_is_carried_by_tables_never_an_op_and_checked(tmp_path, template_trace):
    suite_in(tmp_path, FakeRuns(template_trace))
    table = read_profile_tree(tmp_path).profiles
    assert PEAK_MEMORY in table.columns and PEAK_MEMORY not in op_columns(table.columns)
    assert (table[PEAK_MEMORY] > 1000).all()

    bad = table.copy()
    bad.loc[0, PEAK_MEMORY] = -5.0
    with pytest.raises(
        ProfcastError, match="column 'peak_memory_bytes' row 0 .* value -5.0 is negative; peak_memory_bytes is"
    ):
        validate_profiles(bad)


# ---- end to end: the smoke suite on this CPU, converted, trained on, forecast from ----------------


@pytest.mark.e2e  # real training steps of every smoke workload under the profiler (about a minute)
def test_real_smoke_workloads_write_traces_with_peak_memory_in_the_manifest(tmp_path):
    workloads = smoke()[:3]  # three networks, each really trained for two steps on this CPU
    run_suite("smoke", workloads, tmp_path, "cpu", "cpu", MACHINE)

    records = manifest_of(tmp_path)["workloads"]
    assert [records[w.name]["status"] for w in workloads] == ["done"] * 3
    table = read_profile_tree(tmp_path).profiles
    assert sorted(table["model"]) == sorted(w.network.name for w in workloads)
    for workload in workloads:
        row = table[table["model"] == workload.network.name].iloc[0]
        assert row[PEAK_MEMORY] == records[workload.name][PEAK_MEMORY] > 0
        assert row["batch_latency"] == pytest.approx(records[workload.name]["batch_latency"])


@pytest.mark.slow  # about 100 s: two smoke suites, a training job and two forecasts
def test_the_smoke_suite_runs_converts_trains_and_forecasts(tmp_path, empty_tracking_database, monkeypatch, capsys):
    import subprocess
    import sys

    from profcast.predict import main as predict
    from tests.conftest import REPO, train_into_fresh_store

    out = tmp_path / "catalogue"
    for instance, threads in (("cpu-1thread", "1"), ("cpu-2threads", "2")):
        command = [sys.executable, "-m", "src.collect", "suite", "--suite", "smoke", "--instance", instance]
        done = subprocess.run(
            [*command, "--out", str(out), "--device", "cpu", "--threads", threads],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert f"suite smoke on {instance} (cpu): {len(smoke())} done" in done.stdout
        manifest = json.loads((out / "suite" / instance / SUITE_MANIFEST).read_text())
        assert manifest["machine"]["cpu"]["torch_threads"] == int(threads)
        assert all(r["status"] == "done" and r["peak_memory_bytes"] > 0 for r in manifest["workloads"].values())
    table = tmp_path / "catalogue.csv"
    converted = subprocess.run(
        [sys.executable, "-m", "src.convert", str(out), "--out", str(table)], cwd=REPO, capture_output=True, text=True
    )
    assert converted.returncode == 0, converted.stderr

    # The catalogue gives the second "instance" a memory between the suite's smallest and largest peaks.
    import pandas as pd

    import profcast.train

    peaks = pd.read_csv(table).query("instance_name == 'cpu-2threads'")
    peaks = peaks.groupby(["dataset", "model", "optimizer", "batchsize"])[PEAK_MEMORY].median().sort_values()
    smallest, largest = peaks.index[0], peaks.index[-1]
    memory_gb = (peaks.iloc[0] + peaks.iloc[-1]) / 2 / 1e9
    monkeypatch.setattr(profcast.train, "load_catalogue", lambda: {"cpu-2threads": {"memory_gb": memory_gb}})
    trained = train_into_fresh_store(
        tmp_path,
        empty_tracking_database,
        ["data=file", f"data.path={table}", "anchor=cpu-1thread", "regressor=ratio", "whatif=none"],
    )
    metrics = trained["metrics"]["cpu-2threads"]
    assert 0 <= metrics["peak_memory_error_pct"] < 50  # measured on the suite's own pairs, holding networks out

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    answers = {}
    for name, workload in (("small", smallest), ("large", largest)):
        trace = out / "suite" / "cpu-1thread" / f"{'-'.join(map(str, workload))}.pt.trace.json.gz"
        code = exit_code(predict, ["--profile", str(trace), "--anchor", "cpu-1thread", "--model", trained["model_uri"]])
        answers[name] = capsys.readouterr().out
        assert code == 0 and "cpu-2threads" in answers[name] and "(anchor, measured)" in answers[name]
    assert "fits, " in answers["small"] and "does not fit" not in answers["small"]
    assert "NO: " in answers["large"] and "-- does not fit in the device's memory" in answers["large"]
    assert answers["large"].index("does not fit") < answers["large"].index("cpu-2threads")  # shown apart, below
    # The served model itself (what `mlflow models serve` runs) answers the same from the traces' rows.
    import mlflow

    rows = [
        read_torch_trace(out / "suite" / "cpu-1thread" / f"{'-'.join(map(str, workload))}.pt.trace.json.gz")
        for workload in (smallest, largest)
    ]
    answer = mlflow.pyfunc.load_model(trained["model_uri"]).predict(pd.DataFrame(rows).fillna(0.0))
    assert answer["fits"].tolist() == [True, False]
    assert (answer["memory_margin_bytes"].astype(float) > 0).tolist() == [True, False]


def test_a_real_ctrl_c_exits_130_and_a_rerun_goes_on_from_there(run_cli, start_cli, tmp_path):
    import signal
    import time

    suites = tmp_path / "suites.yaml"  # many small workloads: the stop lands while the suite still runs
    suites.write_text(
        "suites:\n  many: {networks: [resnet18], width: 0.1, batch_sizes: [2, 3, 4, 5], image_sizes: [32, 48], steps: 1}\n"
    )
    command = ["-m", "src.collect", "suite", "--suite", "many", "--suites-file", str(suites)]
    command += ["--instance", "cpu", "--out", str(tmp_path), "--device", "cpu", "--threads", "1"]
    manifest = tmp_path / "suite" / "cpu" / SUITE_MANIFEST
    log = tmp_path / "suite.log"  # stdout and stderr together
    running = start_cli(command, None, log)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and running.poll() is None:
        done = json.loads(manifest.read_text())["workloads"] if manifest.exists() else {}
        if sum(r["status"] == "done" for r in done.values()) >= 2:
            break
        time.sleep(0.2)
    running.send_signal(signal.SIGINT)
    running.wait(timeout=120)
    stderr = log.read_text()

    assert running.returncode == 130, stderr
    assert "run the same command again to go on" in stderr and "Traceback" not in stderr
    content = json.loads(manifest.read_text())
    statuses = [r["status"] for r in content["workloads"].values()]
    assert content["stopped"] == "interrupted" and set(statuses) <= {"done", "pending"}, content["workloads"]
    done = {name for name, r in content["workloads"].items() if r["status"] == "done"}
    folder = tmp_path / "suite" / "cpu"
    assert {p.name for p in folder.iterdir()} == {SUITE_MANIFEST, *(f"{name}.pt.trace.json.gz" for name in done)}

    again = run_cli(command, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"skipping {len(done)} workloads already run" in again.stderr
    assert "8 done, 0 out of memory, 0 failed, 0 pending of 8" in again.stdout  # 4 batch sizes x 2 image sizes
