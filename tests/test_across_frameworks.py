"""Across frameworks end to end: a model trained on NeuSight's FX-node measurements of today's GPUs, in
the canonical vocabulary, forecasts a torch.profiler trace of a transformer training step made here.

The trace ran on this machine's CPU (no device events: its op time arrives as ``Host_`` self times, which
the canonical vocabulary counts as the device's work of a CPU-only run); the model learned V100 -> H100
from NeuSight's label files. The forecast must be answered (no refusal, the served model's 400), and
the trace's names must reach the vocabulary (under 5% of its time in ``other``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from profcast.schema import op_columns
from profcast.vocabulary import load_mapping, to_canonical
from tests.conftest import REPO

NEUSIGHT = REPO / ".." / "shared" / "data" / "neusight"
ANCHOR, TARGET = "v100-pcie-32gb", "h100-80gb-hbm3"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (NEUSIGHT / "scripts").is_dir(), reason="NeuSight's shared copy (../shared) not found"),
]


@pytest.fixture(scope="module")
def neusight_job(tmp_path_factory, empty_tracking_database):
    """``python -m profcast.train data=neusight vocabulary=canonical regressor=transfer`` for one target."""
    from tests.conftest import train_into_fresh_store

    return train_into_fresh_store(
        tmp_path_factory.mktemp("across_frameworks"),
        empty_tracking_database,
        [
            "data=neusight",
            f"data.path={NEUSIGHT}",
            f"anchor={ANCHOR}",
            f"target={TARGET}",
            "vocabulary=canonical",
            "regressor=transfer",
            "log_plots=false",
        ],
    )


@pytest.fixture(scope="module")
def transformer_trace(tmp_path_factory):
    """A torch.profiler CPU trace of two training steps of a 2-layer transformer encoder (SGD), in profcast's
    layout. One thread: with two, a step took 0.3 to over 3 s as other work on the 2 cores stalled torch's
    parallel regions; with one, about 0.35 s idle. The model answers profiles of 0.14 to 4.6 s of op time
    (2x around its V100 training profiles), so a loaded machine still gets an answer."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from profcast.collect import profile_steps

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, dim_feedforward=2048, batch_first=True)
    model = nn.Sequential(nn.TransformerEncoder(layer, num_layers=2), nn.Linear(512, 512))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(2, 256, 512), torch.randn(2, 256, 512)

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    folder = tmp_path_factory.mktemp("transformer_trace")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row = profile_steps(
            step, steps=2, warmup=1, wait=0, out_dir=folder, instance=ANCHOR, model="encoder2", dataset="256tokens",
            optimizer="train", batchsize=2,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    (path,) = folder.rglob("*.pt.trace.json.gz")
    return path, row


def test_the_trace_maps_into_the_vocabulary_with_under_5_percent_other(transformer_trace):
    _, row = transformer_trace
    profile = pd.DataFrame([row])
    canonical, unmapped = to_canonical(profile, load_mapping())

    assert unmapped["share"].sum() < 0.05, unmapped
    device = [column for column in op_columns(canonical.columns) if column.startswith("Device_")]
    assert "Device_dense_matmul" in device and "Device_batched_matmul" in device  # a CPU run's work is its device's
    # No time is lost or made up by the mapping: the op columns add up as before.
    assert canonical[op_columns(canonical.columns)].sum(axis=1).iloc[0] == pytest.approx(
        profile[op_columns(profile.columns)].sum(axis=1).iloc[0]
    )


def test_a_neusight_trained_model_serves_the_trace_without_refusal(neusight_job, transformer_trace):
    """Over HTTP MLflow keeps only the signature's columns: a canonical model lists every canonical column,
    so the trace is sent mapped (docs/profile-formats.md); sent raw, MLflow drops the torch
    names no training profile had and what is left is refused in one line, not forecast from nothing."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from profcast.serve.model_folder import load_checked_model

    _, row = transformer_trace
    mlflow.set_tracking_uri(neusight_job["uri"])
    # profcast's own loader: MLflow's would import the model's copy of profcast (code_paths) in place of
    # the installed one, and a later test composing a config would look for conf/ in that copy.
    model = load_checked_model(mlflow.artifacts.download_artifacts(neusight_job["model_uri"]))
    raw = pd.DataFrame([{"batchsize": row["batchsize"], **{c: row[c] for c in op_columns(row)}}])
    mapped, _ = to_canonical(raw, load_mapping())

    answer = model.predict(mapped)  # a refusal would raise here (the served model's 400)

    assert list(answer["target_instance"]) == [TARGET] and (answer["batch_latency"] > 0).all()
    with pytest.raises(MlflowException, match="no known op column|outside what this model can answer"):
        model.predict(raw[[column for column in raw.columns if column.startswith("Host_")]])


def test_predict_ranks_the_gpus_for_the_trace_and_names_little_other(
    neusight_job, transformer_trace, capsys, monkeypatch
):
    from profcast.cli import exit_code
    from profcast.predict import main

    path, _ = transformer_trace
    monkeypatch.setenv("MLFLOW_TRACKING_URI", neusight_job["uri"])

    code = exit_code(main, ["--profile", str(path), "--anchor", ANCHOR, "--model", neusight_job["model_uri"]])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert TARGET in out and ANCHOR in out
    for line in out.splitlines():  # a note names what went to 'other' and its share: under 5% of op time
        if "went to 'other'" in line:
            share = float(line.split("went to 'other' (")[1].split("%")[0])
            assert share < 5, line
