"""The PyTorch collector: a real profiled run lands in profcast's layout and matches torch's own totals."""

import sys
from collections import defaultdict

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.profile_files import read_profile_tree
from profcast.ingest.torch_trace import op_name, read_torch_trace
from tests.conftest import REPO

KEYS = dict(instance="cpu.local", model="mlp", dataset="synthetic", batchsize=8, optimizer="sgd", exp="exp7")


def tiny_training_step():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(8, 32), torch.randint(0, 4, (8,))

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    return step


def test_profile_steps_writes_the_layout_and_returns_the_trace_row(tmp_path):
    from profcast.collect import profile_steps

    row = profile_steps(tiny_training_step(), steps=3, warmup=1, out_dir=tmp_path, **KEYS)

    written = list(tmp_path.rglob("*"))
    trace = tmp_path / "exp7" / "cpu.local" / "synthetic-mlp-sgd-8.pt.trace.json.gz"
    assert trace in written and not [p for p in written if "partial" in p.name]
    assert row == {**row, **read_torch_trace(trace)} and row["batch_latency"] > 0
    tree_row = read_profile_tree(tmp_path).profiles.iloc[0]
    assert (tree_row["exp_name"], tree_row["instance_name"], tree_row["model"], tree_row["batchsize"]) == (
        "exp7",
        "cpu.local",
        "mlp",
        8,
    )


def test_a_fresh_trace_matches_key_averages_self_cpu_time_per_op(tmp_path):
    from profcast.collect import record_trace

    steps = 4
    prof = record_trace(tiny_training_step(), tmp_path / "run.pt.trace.json.gz", steps=steps, warmup=1, wait=0)
    expected = defaultdict(float)
    for event in prof.key_averages():
        expected[f"Host_{op_name(event.key)}"] += event.self_cpu_time_total / steps

    row = read_torch_trace(tmp_path / "run.pt.trace.json.gz")

    host_ops = {k: v for k, v in row.items() if k.startswith("Host_") and k != "Host_IDLE"}
    assert host_ops and all(v == pytest.approx(expected[k], rel=0.01, abs=0.01) for k, v in host_ops.items())
    assert row["batch_latency"] > 0


def test_names_that_break_the_layout_are_refused(tmp_path):
    from profcast.collect import trace_path

    with pytest.raises(ProfcastError, match="model='res-net'"):
        trace_path(tmp_path, "exp1", "cpu", "cifar10", "res-net", "sgd", 8)
    with pytest.raises(ProfcastError, match="batchsize=0"):
        trace_path(tmp_path, "exp1", "cpu", "cifar10", "resnet", "sgd", 0)


def test_without_torch_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    from profcast.collect import profile_steps

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail as if it were absent

    with pytest.raises(ProfcastError, match=r'pip install -e "\.\[torch\]"'):
        profile_steps(lambda: None, out_dir=tmp_path, **KEYS)


def test_the_cpu_cnn_example_runs_and_prints_a_row(run_cli, tmp_path):
    pytest.importorskip("torch")
    done = run_cli(
        [str(REPO / "examples" / "profile_cnn_cpu.py"), "--out-dir", str(tmp_path), "--steps", "2"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch_latency" in done.stdout and "Host_" in done.stdout
    assert len(list(tmp_path.rglob("synthetic-smallcnn-sgd-16.pt.trace.json.gz"))) == 1
