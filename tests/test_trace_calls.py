"""Per-call records from a PyTorch trace recorded with shapes (profcast.collect records them)."""

from __future__ import annotations

import pytest

from profcast.errors import ProfcastError
from profcast.ingest.trace_calls import conv_output_shape, read_trace_calls
from profcast.regressors.call_costs import add_call_costs
from tests.conftest import REPO
from tests.test_collect import tiny_training_step
from tests.test_per_call import NEUSIGHT


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


def tiny_convolution_step():
    torch = pytest.importorskip("torch")
    # the first layer strided and padded, the second dilated, so that only the right formula fits both
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 3, padding=2, dilation=2),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.randn(2, 3, 16, 16)

    def step():
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()

    return step


def test_trace_convolutions_forward_and_backward_are_counted(tmp_path):
    """A convolution's output needs its stride, padding and dilation: read from the trace's concrete inputs."""
    from profcast.collect import record_trace

    path = tmp_path / "run.pt.trace.json.gz"
    record_trace(tiny_convolution_step(), path, steps=1, warmup=1, wait=0)
    calls = add_call_costs(read_trace_calls(path, gpu="cpu", model="cnn", batchsize=2))
    forward = calls[calls["kind"] == "conv2d"].sort_values("node")
    # (2, 3, 16, 16) stride 2 pad 1 -> (2, 8, 8, 8); then (2, 8, 8, 8) pad 2 dilation 2 -> (2, 4, 8, 8)
    assert forward["output_shape"].tolist() == [(2, 8, 8, 8), (2, 4, 8, 8)]
    assert forward["flops"].tolist() == [2.0 * (2 * 8 * 8 * 8) * 3 * 9, 2.0 * (2 * 4 * 8 * 8) * 8 * 9]
    assert forward["known"].all()
    backward = calls[calls["kind"] == "convolution_backward"]
    assert len(backward) == 2 and backward["known"].all()
    # the input's and the weight's gradients: twice each forward's FLOPs
    assert sorted(backward["flops"]) == sorted(2 * forward["flops"])


@pytest.mark.parametrize(
    ("given", "weight", "args", "expected"),
    [
        ((1, 3, 224, 224), (64, 3, 7, 7), (2, 3, 1), (1, 64, 112, 112)),  # ResNet's stem
        ((3, 10), (5, 3, 3), ([1], [0], [1]), (5, 8)),  # conv1d without a batch axis
        ((1, 3, 9, 9), (4, 3, 3, 3), (1, "same", 1), (1, 4, 9, 9)),
        ((1, 3, 9, 9), (4, 3, 3, 3), ([1, 2], "valid", 1), (1, 4, 7, 4)),
        ((1, 3, 2, 2), (4, 3, 5, 5), (1, 0, 1), ()),  # kernel larger than the padded input
        ((1, 3, 9, 9), (4, 3, 3, 3), (0, 0, 1), ()),  # stride 0
        ((1, 3, 9, 9), (4, 3, 3, 3), ([1, 1, 1], 0, 1), ()),  # three strides for two axes
    ],
)
def test_convolution_output_shape(given, weight, args, expected):
    assert conv_output_shape(given, weight, *args) == expected


def test_trace_without_shapes_is_one_line():
    path = next((REPO / "tests" / "data" / "torch_traces" / "runs").rglob("*.pt.trace.json.gz"))
    with pytest.raises(ProfcastError, match="no input shapes; record it with record_shapes=True"):
        read_trace_calls(path)


@pytest.mark.slow
@pytest.mark.skipif(not (NEUSIGHT / "scripts").is_dir(), reason="NeuSight shared data absent (../shared/data/neusight)")
def test_predict_target_gpu_reads_a_collected_trace(tmp_path, capsys):
    """A trace of the user's own job, taken on a machine described by --anchor-gpu, forecast on a new GPU."""
    from profcast.cli import exit_code
    from profcast.collect import record_trace
    from profcast.predict import main

    trace = tmp_path / "run.pt.trace.json.gz"
    record_trace(tiny_training_step(), trace, steps=2, warmup=1, wait=0)
    figures = "fp32_tflops: {}\nmemory_bandwidth_gbs: {}\nmemory_gb: 16\nl2_mb: 8\nsm_count: 8\nclock_mhz: 2000\n"
    (tmp_path / "cpu.yaml").write_text(figures.format(1, 50))
    (tmp_path / "new.yaml").write_text("name: new-gpu\n" + figures.format(40, 2000))
    args = ["--profile", str(trace), "--anchor", "cpu", "--anchor-gpu", str(tmp_path / "cpu.yaml")]
    args += ["--target-gpu", str(tmp_path / "new.yaml"), "--calls-data", str(NEUSIGHT)]
    assert exit_code(main, args) == 0
    out = capsys.readouterr().out
    assert "new-gpu: unmeasured GPU" in out and "Device_linear_fw" in out
