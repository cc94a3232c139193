"""Per-call records from a PyTorch trace recorded with shapes (profcast.collect records them)."""

from __future__ import annotations

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.trace_calls import read_trace_calls
from profcast.models.call_costs import add_call_costs
from tests.conftest import REPO
from tests.test_collect import tiny_training_step


def test_collected_trace_becomes_calls_with_shapes_and_work(tmp_path):
    from profcast.collect import record_trace

    path = tmp_path / "run.pt.trace.json.gz"
    record_trace(tiny_training_step(), path, steps=2, warmup=1, wait=0)
    calls = add_call_costs(read_trace_calls(path, gpu="cpu", model="mlp", batchsize=8))
    # Linear(32, 16) on (8, 32): aten::linear(x (8, 32), weight (16, 32), bias (16,)), 2*8*32*16 FLOPs
    first = calls[(calls["kind"] == "linear") & (calls["input_shapes"].map(lambda s: s[0]) == (8, 32))]
    assert len(first) == 2  # once per recorded step
    assert set(first["flops"]) == {2.0 * 8 * 32 * 16}
    assert set(first["bytes"]) == {4.0 * (8 * 32 + 32 * 16 + 8 * 16)}
    assert (calls["repeat"] == 0.5).all() and (calls["time_source"] == "host").all()
    assert calls.loc[calls["backward"], "kind"].isin(["mm"]).any()  # the weight gradients
    assert not calls.loc[~calls["backward"], "kind"].isin(["mm"]).any()
    assert (calls["time_us"] >= 0).all() and calls["gpu"].eq("cpu").all()


def test_trace_without_shapes_is_one_line():
    path = next((REPO / "tests" / "data" / "torch_traces" / "runs").rglob("*.pt.trace.json.gz"))
    with pytest.raises(ProfcastError, match="no input shapes; record it with record_shapes=True"):
        read_trace_calls(path)
