"""The collector under real faults: an unusable --out, a full disk, a second collector, stops and kills.

The faults are real: a tmpfs of a few hundred KiB that fills up (skipped where mounting is not
permitted), a read-only mount, a second holder of the lock, a SIGINT delivered while torch's
profiler keeps its books, a SIGKILL to a running suite. Each ends in one line (or exit 130) with
the manifest consistent: no workload left ``running``, every ``done`` one with its whole trace.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from profcast import stops
from profcast.collect.manifest import SUITE_MANIFEST
from profcast.collect.out_folder import LOCK_NAME, collector_lock
from profcast.collect.runner import run_suite
from profcast.errors import ProfcastError
from profcast.ingest.profile_files import read_profile_tree
from tests.test_collect_suite import MACHINE, FakeRuns, manifest_of, smoke, suite_in, template_trace  # noqa: F401

torch = pytest.importorskip("torch")


@contextmanager
def small_filesystem(path, kilobytes: int, read_only: bool = False):
    """A real tmpfs of ``kilobytes`` at ``path`` for the block (skips the test where mount is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={kilobytes}k" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder, leave_bytes: int = 0) -> None:
    """Write into ``folder`` until the disk is full (or only about ``leave_bytes`` are free)."""
    with open(folder / ".filler", "wb") as handle:
        try:
            while shutil.disk_usage(folder).free > leave_bytes:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError:
            pass


def statuses(folder) -> dict[str, str]:
    return {name: record["status"] for name, record in manifest_of(folder)["workloads"].items()}


class FillingRuns(FakeRuns):
    """Whole traces, each followed by a real write of ``filler_bytes`` beside it, until the disk is full."""

    def __init__(self, template, filler_bytes: int):
        super().__init__(template)
        self.filler_bytes = filler_bytes

    def __call__(self, workload, path, device):
        super().__call__(workload, path, device)
        (path.parent / f".filler-{len(self.calls)}").write_bytes(b"\0" * self.filler_bytes)


# ---- an --out that cannot be used: one line before anything runs ---------------------------------------


def test_an_out_that_is_a_regular_file_is_refused_in_one_line(tmp_path, template_trace):
    out = tmp_path / "catalogue"
    out.write_text("not a folder")
    with pytest.raises(ProfcastError, match=r"--out .*catalogue: is a file, not a folder"):
        suite_in(out, FakeRuns(template_trace))
    assert out.read_text() == "not a folder"


def test_an_out_under_a_regular_file_is_refused_in_one_line(tmp_path, template_trace):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProfcastError, match=r"--out .*file/catalogue: cannot create the folder \(Not a directory\)"):
        suite_in(tmp_path / "file" / "catalogue", FakeRuns(template_trace))


@pytest.mark.integration  # mounts a tmpfs
def test_an_out_on_a_read_only_filesystem_is_refused_in_one_line(tmp_path, template_trace):
    with small_filesystem(tmp_path / "ro", 256, read_only=True) as out:
        runs = FakeRuns(template_trace)
        with pytest.raises(ProfcastError, match="is on a read-only file system; free it up or pass another --out"):
            suite_in(out, runs)
        assert runs.calls == []


@pytest.mark.integration  # mounts a tmpfs
def test_an_out_on_a_full_disk_is_refused_before_any_workload_runs(tmp_path, template_trace):
    with small_filesystem(tmp_path / "full", 256) as out:
        fill(out)
        runs = FakeRuns(template_trace)
        with pytest.raises(ProfcastError, match=r"has no room left on its disk \(0 bytes free\)"):
            suite_in(out, runs)
        assert runs.calls == [] and not (out / "suite").exists()


# ---- a disk that fills up mid-suite ----------------------------------------------------------------------


@pytest.mark.integration  # mounts a tmpfs
def test_a_disk_filling_mid_suite_stops_in_one_line_and_no_workload_stays_running(tmp_path, template_trace):
    with small_filesystem(tmp_path / "small", 512) as out:
        runs = FillingRuns(template_trace, filler_bytes=96 * 1024)
        with pytest.raises(ProfcastError, match=r"stopped at .*, put back to pending \(.*No space left on device"):
            suite_in(out, runs)
        hit = runs.calls[-1]
        found = statuses(out)
        assert found[hit] == "pending" and "running" not in found.values()
        done = {name for name, status in found.items() if status == "done"}
        assert done == set(runs.calls[:-1]) and len(done) >= 1
        folder = out / "suite" / "cpu"
        assert {p.name for p in folder.glob("*.pt.trace.json.gz")} == {f"{n}.pt.trace.json.gz" for n in done}
        assert len(read_profile_tree(out).profiles) == len(done)  # every trace kept is whole
        for filler in folder.glob(".filler-*"):  # make room: the same command goes on where it stopped
            filler.unlink()
        again = FakeRuns(template_trace)
        suite_in(out, again)
        assert again.calls[0] == hit and set(statuses(out).values()) == {"done"}


@pytest.mark.integration  # mounts a tmpfs
def test_a_finished_workload_whose_manifest_cannot_be_written_goes_back_to_pending_not_running(
    tmp_path, template_trace
):
    class FillAfterTrace(FakeRuns):
        def __call__(self, workload, path, device):
            super().__call__(workload, path, device)
            if len(self.calls) == 3:  # the trace is whole; now nothing else fits
                fill(path.parent)

    with small_filesystem(tmp_path / "small", 512) as out:
        runs = FillAfterTrace(template_trace)
        with pytest.raises(
            ProfcastError, match=r"stopped at .*cannot write the suite manifest.*the manifest is consistent"
        ):
            suite_in(out, runs)
        found = statuses(out)
        assert found[runs.calls[2]] == "pending" and "running" not in found.values()
        assert not (out / "suite" / "cpu" / f"{runs.calls[2]}.pt.trace.json.gz").exists()
        assert [n for n, s in found.items() if s == "done"] == sorted(runs.calls[:2])
        assert not list((out / "suite" / "cpu").glob(f".{SUITE_MANIFEST}.*"))  # no temporary manifest left


# ---- one collector per --out ----------------------------------------------------------------------------


def test_a_second_collector_on_the_same_out_is_refused_and_changes_nothing(tmp_path, template_trace):
    suite_in(tmp_path, FakeRuns(template_trace))
    before = (tmp_path / "suite" / "cpu" / SUITE_MANIFEST).read_bytes()
    with collector_lock(tmp_path):  # a separate open file: flock conflicts as with another process
        runs = FakeRuns(template_trace)
        with pytest.raises(ProfcastError, match=rf"another collector \(pid {__import__('os').getpid()}\) is running"):
            run_suite("smoke", smoke(), tmp_path, "cpu-2", "cpu", MACHINE, run=runs)
    assert runs.calls == [] and (tmp_path / "suite" / "cpu" / SUITE_MANIFEST).read_bytes() == before
    assert not (tmp_path / "suite" / "cpu-2").exists()


def test_wait_runs_after_the_other_collector_lets_go(tmp_path, template_trace):
    holder = open(tmp_path / LOCK_NAME, "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)
    threading.Timer(0.5, holder.close).start()
    runs = FakeRuns(template_trace)
    started = time.monotonic()
    suite_in(tmp_path, runs, wait=True)
    assert time.monotonic() - started >= 0.4 and len(runs.calls) == len(smoke())


@pytest.mark.integration  # starts a process and kills it
def test_the_lock_of_a_killed_collector_is_free_at_once(tmp_path, template_trace):
    code = f"import fcntl,sys,time; h=open({str(tmp_path / LOCK_NAME)!r},'a+'); fcntl.flock(h, fcntl.LOCK_EX); print(1, flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    with pytest.raises(ProfcastError, match="another collector"):
        suite_in(tmp_path, FakeRuns(template_trace))
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    runs = FakeRuns(template_trace)
    suite_in(tmp_path, runs)  # the kernel dropped the lock with the process: no stale lock to clean
    assert len(runs.calls) == len(smoke())


# ---- stops inside torch's profiler, kills -----------------------------------------------------------


def test_a_stop_arriving_inside_the_profilers_bookkeeping_is_raised_once_it_is_done():
    # A function whose module name is torch's profiler's: the stop must wait until it has returned.
    namespace = {"__name__": "torch.profiler.profiler", "signal": signal}
    exec("def keep_books(log):\n    signal.raise_signal(signal.SIGINT)\n    log.append('books kept')\n", namespace)
    log: list[str] = []
    previous = stops.install_stop_handlers()
    try:
        with pytest.raises(KeyboardInterrupt):
            namespace["keep_books"](log)
            log.append("returned to the caller")
            time.sleep(2)  # the held-back stop arrives here, at the caller's next line
            log.append("never reached")
    finally:
        stops.restore_handlers(previous)
        stops._signals_seen.clear()
    assert log == ["books kept", "returned to the caller"]


def test_a_stop_a_library_turned_into_its_own_error_ends_the_suite_as_a_stop(tmp_path, template_trace):
    class StoppedInsideTorch(FakeRuns):
        def __call__(self, workload, path, device):
            super().__call__(workload, path, device)
            if len(self.calls) == 2:
                stops._signals_seen.append(signal.SIGINT)  # what the handler records on a real Ctrl-C
                raise AssertionError("Expected record to be set")  # what torch's profiler raised

    runs = StoppedInsideTorch(template_trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            suite_in(tmp_path, runs)
    finally:
        stops._signals_seen.clear()
    found = statuses(tmp_path)
    assert found[runs.calls[1]] == "pending" and "failed" not in found.values()
    assert manifest_of(tmp_path)["stopped"] == "interrupted"


def many_workloads_command(tmp_path):
    from tests.conftest import REPO

    suites = tmp_path / "suites.yaml"
    suites.write_text(
        "suites:\n  many: {networks: [resnet18], width: 0.1, batch_sizes: [2, 3], image_sizes: [32, 48], steps: 1}\n"
    )  # 4 workloads: the kill lands after the first is done, the rerun does the rest
    command = [sys.executable, "-m", "src.collect", "suite", "--suite", "many", "--suites-file", str(suites)]
    return REPO, [*command, "--instance", "cpu", "--out", str(tmp_path), "--device", "cpu", "--threads", "1"]


@pytest.mark.integration  # runs real workloads in a process and kills it
def test_a_sigkill_mid_suite_leaves_a_readable_manifest_and_a_rerun_finishes(tmp_path):
    repo, command = many_workloads_command(tmp_path)
    manifest = tmp_path / "suite" / "cpu" / SUITE_MANIFEST
    running = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and running.poll() is None:
        if manifest.exists() and sum(
            r["status"] == "done" for r in json.loads(manifest.read_text())["workloads"].values()
        ):
            break
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=60)

    content = json.loads(manifest.read_text())  # whole JSON: it is only ever replaced by a rename
    done = {name for name, record in content["workloads"].items() if record["status"] == "done"}
    assert done and set(r["status"] for r in content["workloads"].values()) <= {"done", "pending", "running"}
    again = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "USDT" not in again.stderr  # Kineto's own log is silenced
    final = json.loads(manifest.read_text())["workloads"]
    assert {r["status"] for r in final.values()} <= {"done", "failed"}  # a workload it died in: failed, said why
    assert sum(r["status"] == "done" for r in final.values()) >= len(final) - 1
