"""One op vocabulary across frameworks: the mapping, its unmapped report, training, serving, and a
torch CPU trace against an FX-node profile of the same training step."""

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.schema import op_columns
from profcast.vocabulary import Vocabulary, load_mapping, mapping_from_stored, to_canonical
from tests.conftest import REPO

REAL_PROFET = REPO.parent / "shared" / "data" / "profet" / "profiles.csv.gz"


@pytest.fixture(scope="module")
def mapping():
    return load_mapping()


def frameworks_frame() -> pd.DataFrame:
    """Two rows naming the same kinds of work as TensorFlow, a torch trace and a NeuSight FX profile would."""
    return pd.DataFrame(
        {
            "model": ["a", "b"],
            "batchsize": [32, 64],
            "batch_latency": [0.5, 0.7],
            "Device_MatMul": [10.0, 1.0],  # TensorFlow
            "Device_addmm": [5.0, 2.0],  # torch trace (aten:: dropped by the reader)
            "Device_Linear_fw": [2.0, 3.0],  # FX call_module Linear, forward
            "Device_Linear_bw": [3.0, np.nan],  # and backward (missing: 0 in a sum)
            "Device_Conv2DBackpropFilter": [7.0, 0.0],
            "Device_convolution_backward": [1.0, 4.0],
            "Device_FusedBatchNormV3": [6.0, 1.0],  # a variant no exact entry names: the rules
            "Device_native_batch_norm_backward": [1.0, 1.0],
            "Device_matmul_fw": [4.0, 4.0],  # FX torch.matmul: the attention products
            "Device_Linear_acc": [0.5, 0.5],  # gradient accumulation
            "Host_IDLE": [4.0, 2.0],
            "Host_cudaLaunchKernel": [2.0, 1.0],
            "Device_mystery_op": [8.0, 0.0],  # nothing names it: other, reported
            "Host_MysteryHostThing": [np.nan, 2.0],
        }
    )


def test_op_columns_are_summed_per_category_and_keys_kept(mapping):
    frame = frameworks_frame()

    canonical, _ = to_canonical(frame, mapping)

    assert list(canonical[["model", "batchsize", "batch_latency"]].itertuples(index=False)) == [
        ("a", 32, 0.5),
        ("b", 64, 0.7),
    ]
    expected = {
        "Device_dense_matmul": [10 + 5 + 2 + 3, 1 + 2 + 3],
        "Device_conv_backward": [7 + 1, 0 + 4],
        "Device_normalization": [6 + 1, 1 + 1],
        "Device_batched_matmul": [4, 4],
        "Device_optimizer_update": [0.5, 0.5],
        "Host_idle": [4, 2],
        "Host_host_launch_overhead": [2, 1],
        "Device_other": [8, 0],
        "Host_other": [np.nan, 2],  # every summed cell missing stays missing
    }
    assert set(op_columns(canonical.columns)) == set(expected)
    for column, values in expected.items():
        np.testing.assert_allclose(canonical[column].to_numpy(dtype=float), values, err_msg=column)


def test_unmapped_names_are_reported_with_their_share_of_time(mapping):
    frame = frameworks_frame()
    all_time = np.nansum(frame[op_columns(frame.columns)].to_numpy(dtype=float))

    _, unmapped = to_canonical(frame, mapping)

    assert list(unmapped["column"]) == ["Device_mystery_op", "Host_MysteryHostThing"]  # largest share first
    assert list(unmapped["canonical_column"]) == ["Device_other", "Host_other"]
    np.testing.assert_allclose(unmapped["share"], [8 / all_time, 2 / all_time])


def test_mapping_twice_changes_nothing(mapping):
    once, _ = to_canonical(frameworks_frame(), mapping)
    twice, unmapped = to_canonical(once, mapping)

    pd.testing.assert_frame_equal(twice[once.columns], once)
    assert unmapped.empty


@pytest.mark.parametrize(
    "name, category",
    [
        ("Conv2D", "conv_forward"),
        ("_FusedConv2D", "conv_forward"),
        ("conv2d", "conv_forward"),
        ("Conv2DBackpropInput", "conv_backward"),
        ("ConvolutionBackward0", "conv_backward"),
        ("autograd::engine::evaluate_function: AddmmBackward0", "dense_matmul"),
        ("AddmmBackward0", "dense_matmul"),
        ("BatchMatMulV2", "batched_matmul"),
        ("baddbmm_fw", "batched_matmul"),
        ("BmmBackward0", "batched_matmul"),
        ("LayerNorm_bw", "normalization"),
        ("native_layer_norm_backward", "normalization"),
        ("NewGELUActivation_fw", "elementwise_activation"),
        ("gelu_backward", "elementwise_activation"),
        ("Relu", "elementwise_activation"),
        ("add_fw", "elementwise_activation"),
        ("ReluGrad", "elementwise_activation"),
        ("MaxPoolGrad", "pooling"),
        ("max_pool2d_with_indices_backward", "pooling"),
        ("softmax_bw", "softmax_loss"),
        ("_softmax_backward_data", "softmax_loss"),
        ("SoftmaxCrossEntropyWithLogits", "softmax_loss"),
        ("Embedding_fw", "embedding"),
        ("embedding_dense_backward", "embedding"),
        ("GatherV2", "embedding"),
        ("Dropout_fw", "dropout"),
        ("native_dropout", "dropout"),
        ("RandomUniform", "dropout"),
        ("ResourceApplyAdam", "optimizer_update"),
        ("_foreach_add_", "optimizer_update"),
        ("AccumulateGrad", "optimizer_update"),
        ("view_fw", "data_movement_layout"),
        ("permute_bw", "data_movement_layout"),
        ("contiguous_fw", "data_movement_layout"),
        ("masked_fill_fw", "elementwise_activation"),
        ("getitem_fw", "data_movement_layout"),
        ("Transpose", "data_movement_layout"),
        ("Memcpy HtoD (Pageable -> Device)", "data_movement_layout"),
        ("unattributed_gpu_memset", "data_movement_layout"),
        ("_Recv", "communication"),
        ("nccl:all_reduce", "communication"),
        ("cudaLaunchKernel", "host_launch_overhead"),
        ("hipLaunchKernel", "host_launch_overhead"),
        ("IteratorGetNext", "input_pipeline"),
        ("IDLE", "idle"),
        ("CudnnRNNBackprop", "recurrent"),
        ("_cudnn_rnn_backward", "recurrent"),
        ("LSTM_fw", "recurrent"),
        ("Conv1D_fw", "dense_matmul"),  # HuggingFace's Conv1D is a Linear
        ("torch::autograd::AccumulateGrad", "optimizer_update"),  # a CPU trace's name for it
        ("isneginf", "elementwise_activation"),  # nn.TransformerEncoderLayer's mask check
        ("select_backward", "data_movement_layout"),
        ("ReshapeAliasBackward0", "data_movement_layout"),
    ],
)
def test_names_of_every_framework_map_to_their_category(mapping, name, category):
    assert mapping.category(name) == category


@pytest.mark.skipif(not REAL_PROFET.exists(), reason="real PROFET data not found")
def test_every_op_of_the_real_profet_table_has_a_category(mapping):
    profiles = pd.read_csv(REAL_PROFET, nrows=5)

    canonical, unmapped = to_canonical(profiles, mapping)

    assert unmapped.empty, list(unmapped["column"])
    assert len(op_columns(canonical.columns)) < len(op_columns(profiles.columns))


def test_every_op_of_the_generated_study_has_a_category(mapping):
    from profcast.generate.networks import workload_step_ops, workloads

    names = {row[0] for workload in workloads() for row in workload_step_ops(workload).rows}
    assert {"CudnnRNN", "Conv2DBackpropFilter", "MatMul"} <= names
    assert not [name for name in sorted(names) if mapping.category(name) is None]


def test_a_cpu_only_run_counts_its_host_work_as_the_device_work(mapping):
    """A torch trace of a CPU-only run has its op time on the host side; TensorFlow puts a CPU's ops on the
    device side. Canonically both are device work, but idle time and launch calls stay on the host."""
    rows = pd.DataFrame(
        [
            {"Host_addmm": 300.0, "Host_add": 50.0, "Host_IDLE": 10.0, "Host_cudaLaunchKernel": 5.0},  # CPU-only
            {"Host_addmm": 7.0, "Device_addmm": 200.0, "Device_IDLE": 20.0, "Host_IDLE": 1.0},  # a GPU run
        ]
    )
    canonical, _ = to_canonical(rows, mapping)
    cpu, gpu = canonical.iloc[0], canonical.iloc[1]

    assert cpu["Device_dense_matmul"] == 300.0 and cpu["Device_elementwise_activation"] == 50.0
    assert cpu["Host_dense_matmul"] == 0.0 and cpu["Host_idle"] == 10.0 and cpu["Host_host_launch_overhead"] == 5.0
    assert gpu["Device_dense_matmul"] == 200.0 and gpu["Host_dense_matmul"] == 7.0  # device work: nothing moves
    assert gpu["Device_elementwise_activation"] == 0.0
    op_sum = canonical[op_columns(canonical.columns)].sum(axis=1)
    pd.testing.assert_series_equal(op_sum, rows.sum(axis=1), check_names=False)  # no time lost or added


def test_an_extra_table_overrides_names_and_adds_rules_first(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "categories:\n  custom_kernels: hand-written CUDA kernels\n"
        "exact:\n  mystery_op: custom_kernels\n  MatMul: batched_matmul\n"
        "rules:\n  - {pattern: '^my_', category: custom_kernels}\n  - {pattern: 'FusedBatchNorm|Conv2D', category: other}\n"
    )

    mapping = Vocabulary(canonical=True, extra=str(extra)).mapping

    assert mapping.category("mystery_op") == "custom_kernels" and mapping.category("my_fused_gelu") == "custom_kernels"
    assert mapping.category("MatMul") == "batched_matmul"  # its exact names win
    assert mapping.category("FusedBatchNormV3") == "other"  # its rules come before the packaged rules
    assert mapping.category("Conv2DBackpropFilter") == "conv_backward"  # ...but after every exact name
    assert mapping.category("addmm") == "dense_matmul"  # the packaged table still applies


@pytest.mark.parametrize(
    "text, message",
    [
        ("rules:\n  - {pattern: '([', category: other}\n", "is not a regular expression"),
        ("exact:\n  foo: no_such_category\n", "not declared"),
        ("rules:\n  - just a string\n", "is not {pattern"),
        ("[1, 2]\n", "expected a mapping"),
    ],
)
def test_a_bad_extra_table_is_a_one_line_error(tmp_path, text, message):
    extra = tmp_path / "bad.yaml"
    extra.write_text(text)
    with pytest.raises(ProfcastError, match=message):
        Vocabulary(canonical=True, extra=str(extra))


def test_native_keeps_the_profile_and_stores_nothing():
    frame = frameworks_frame()
    native = Vocabulary()

    mapped, unmapped = native.apply(frame)

    assert mapped is frame and unmapped is None and native.stored() is None


def test_the_stored_table_maps_as_the_loaded_one(mapping):
    stored = Vocabulary(canonical=True).stored()
    import json

    restored = mapping_from_stored(json.loads(json.dumps(stored)))  # what a manifest keeps: plain JSON

    pd.testing.assert_frame_equal(
        to_canonical(frameworks_frame(), restored)[0], to_canonical(frameworks_frame(), mapping)[0]
    )


# --- training, the served model and profcast.predict in the canonical vocabulary ---------------------

ANCHOR, TARGET = "g3s.xlarge", "p3.2xlarge"


@pytest.fixture(scope="module")
def canonical_job(tmp_path_factory, empty_tracking_database):
    """``python -m profcast.train vocabulary=canonical regressor=ratio target=p3.2xlarge`` on the embedded data."""
    from tests.conftest import train_into_fresh_store

    folder = tmp_path_factory.mktemp("vocabulary")
    return train_into_fresh_store(
        folder,
        empty_tracking_database,
        [f"anchor={ANCHOR}", "vocabulary=canonical", "regressor=ratio", f"target={TARGET}", "log_plots=false"],
    )


def native_anchor_rows(count: int = 3) -> pd.DataFrame:
    from profcast.datasets.embedded import load_embedded_profiles

    profiles = load_embedded_profiles("cnn")
    return profiles[profiles["instance_name"] == ANCHOR].head(count).reset_index(drop=True)


def test_training_in_the_canonical_vocabulary_logs_canonical_columns_and_the_choice(canonical_job):
    import mlflow

    mlflow.set_tracking_uri(canonical_job["uri"])
    runs = mlflow.search_runs([canonical_job["experiment_id"]])
    job = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    target = runs[runs["tags.mlflow.parentRunId"] == job.run_id].iloc[0]

    assert job["params.vocabulary"] == "canonical"
    column_metrics = [
        name[len("metrics.mape.") :]
        for name in runs.columns
        if name.startswith("metrics.mape.") and pd.notna(target[name])
    ]
    assert "Device_conv_forward" in column_metrics and "Device_dense_matmul" in column_metrics
    assert not [name for name in column_metrics if name in ("Device_Conv2D", "Device_MatMul")]  # no native names left
    unmapped = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=job.run_id, artifact_path="unmapped_ops.csv"))
    assert list(unmapped.columns) == ["column", "name", "canonical_column", "time_us", "share"]
    assert int(job["params.n_unmapped_ops"]) == len(unmapped)  # the CNN study: every op has a category
    assert len(unmapped) == 0


def test_the_served_model_maps_a_native_request_as_training_did(canonical_job):
    import mlflow

    mlflow.set_tracking_uri(canonical_job["uri"])
    model = mlflow.pyfunc.load_model(canonical_job["model_uri"])
    native = native_anchor_rows()
    canonical, _ = to_canonical(native, load_mapping())

    from_native = model.predict(native.drop(columns=["exp_name"]))
    from_canonical = model.predict(canonical.drop(columns=["exp_name"]))

    assert "Device_conv_forward" in from_native.columns and "Device_Conv2D" not in from_native.columns
    pd.testing.assert_frame_equal(from_native, from_canonical)
    assert (from_native["batch_latency"] > 0).all()


def test_predict_maps_a_native_profile_and_names_what_fell_into_other(canonical_job, tmp_path, capsys, monkeypatch):
    from profcast.cli import exit_code
    from profcast.predict import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", canonical_job["uri"])
    row = native_anchor_rows(1)
    profile = row[[*op_columns(row.columns), "batchsize"]].assign(Device_my_custom_kernel=row["Device_Conv2D"])
    path = tmp_path / "profile.csv"
    profile.to_csv(path, index=False)

    assert exit_code(main, ["--profile", str(path), "--anchor", ANCHOR, "--model", canonical_job["model_uri"]]) == 0

    out = capsys.readouterr().out
    assert TARGET in out
    share = row["Device_Conv2D"].iloc[0] / profile.drop(columns="batchsize").sum(axis=1).iloc[0]
    assert f"Device_my_custom_kernel ({100 * share:.1f}%)" in out and "went to 'other'" in out


# --- across frameworks: a torch CPU trace and an FX-node profile of the same training step -----------

COMPARED = "elementwise_activation softmax_loss normalization dense_matmul batched_matmul data_movement_layout".split()


def attention_block():
    """A small pre-norm transformer block (Linear, LayerNorm, GELU, softmax attention), shapes fixed for FX.

    No dropout: a trace credits a composite op's leaves (dropout's mask multiply is a ``mul``), an FX
    profile the module, so dropout's time would split differently by construction (docs/profile-formats.md).
    The same holds, smaller, for the bias copy ``addmm`` makes on the CPU (a trace's self times credit it to
    ``copy_``, FX to the Linear): about 2.5 points of the step at width 256, which sat the two sides at the
    5-point bar (CI failed on it), about 1.2 at width 512, the width used here.
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, batch=2, seq=128, width=512, heads=8):
            super().__init__()
            self.batch, self.seq, self.width, self.heads = batch, seq, width, heads
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.fc1, self.act, self.fc2 = nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)

        def forward(self, x):
            b, s, d, h = self.batch, self.seq, self.width, self.heads
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
            q, k, v = (t.view(b, s, h, d // h).transpose(1, 2) for t in (q, k, v))
            attention = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / (d // h) ** 0.5, dim=-1)
            y = torch.matmul(attention, v).transpose(1, 2).contiguous().view(b, s, d)
            x = x + self.proj(y)
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))

    torch.manual_seed(0)
    block = Block()
    return block, torch.randn(block.batch, block.seq, block.width)


def profiled_steps(block, x, folder, steps: int = 10) -> tuple[dict, dict]:
    """The same training steps (forward, backward) seen two ways: a torch.profiler CPU trace, read as
    any trace (op times per step), and NeuSight's FX-node naming, ``Device_<kind>_fw``, ``_bw`` and
    ``_acc`` µs per step, kind = module class, function or method name.

    FX times: forward around each node as an fx.Interpreter runs it; backward around each autograd
    node the FX node created (hooks before and after it runs), its parameters' AccumulateGrad as
    ``_acc``. Both come from the very same steps, so a shared machine's preemptions hit both alike.
    """
    import time
    from collections import defaultdict

    import torch
    from torch import fx

    graph = fx.symbolic_trace(block)
    modules = dict(graph.named_modules())

    def kind_of(node) -> str:
        if node.op == "call_module":
            return type(modules[node.target]).__name__
        return node.target.__name__ if node.op == "call_function" else node.target

    def tensors(value) -> list:
        if isinstance(value, torch.Tensor):
            return [value]
        return [t for item in value for t in tensors(item)] if isinstance(value, (tuple, list)) else []

    class TimedStep(fx.Interpreter):
        def __init__(self):
            super().__init__(graph)
            self.times, self.starts, self.handles, self.claimed = defaultdict(float), {}, [], set()

        def run_node(self, node):
            if node.op not in ("call_module", "call_function", "call_method"):
                return super().run_node(node)
            start = time.perf_counter()
            out = super().run_node(node)
            self.times[f"Device_{kind_of(node)}_fw"] += (time.perf_counter() - start) * 1e6
            inputs = {t.grad_fn for n in node.all_input_nodes for t in tensors(self.env[n])}
            pending = [t.grad_fn for t in tensors(out) if t.grad_fn is not None and t.grad_fn not in inputs]
            while pending:  # the autograd nodes this FX node created: from its outputs back to its inputs'
                grad_node = pending.pop()
                if grad_node is None or grad_node in inputs or grad_node in self.claimed:
                    continue
                self.claimed.add(grad_node)
                suffix = "acc" if type(grad_node).__name__ == "AccumulateGrad" else "bw"
                self.watch(grad_node, f"Device_{kind_of(node)}_{suffix}")
                pending += [parent for parent, _ in grad_node.next_functions]
            return out

        def watch(self, grad_node, column):
            def before(*_):
                self.starts[grad_node] = time.perf_counter()

            def after(*_):
                self.times[column] += (time.perf_counter() - self.starts[grad_node]) * 1e6

            self.handles += [grad_node.register_prehook(before), grad_node.register_hook(after)]

    from profcast.ingest.torch_trace import read_torch_trace

    path, rows = folder / "steps.pt.trace.json", []
    schedule = torch.profiler.schedule(wait=0, warmup=1, active=steps, repeat=1)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU],
        schedule=schedule,
        on_trace_ready=lambda prof: prof.export_chrome_trace(str(path)),
    ) as prof:
        for _ in range(steps + 1):
            block.zero_grad(set_to_none=True)
            step = TimedStep()
            step.run(x).pow(2).mean().backward()  # a contiguous gradient, as a real loss gives
            for handle in step.handles:  # AccumulateGrad nodes outlive the step
                handle.remove()
            rows.append(dict(step.times))
            prof.step()
    fx_profile = pd.DataFrame(rows[1:]).fillna(0.0).mean().to_dict()  # the steps the trace holds
    return read_torch_trace(path), fx_profile


def category_shares(row: dict, mapping) -> pd.Series:
    """Each compared category's share of their summed time, Device_ and Host_ sides together (a CPU
    trace has its work on the host side: there is no device)."""
    canonical, _ = to_canonical(pd.DataFrame([row]), mapping)
    times = canonical[op_columns(canonical.columns)].iloc[0]
    by_category = times.groupby(lambda column: column.split("_", 1)[1]).sum()
    compared = by_category.reindex(COMPARED, fill_value=0.0)
    return compared / compared.sum()


@pytest.mark.e2e  # real training steps measured twice: on a loaded machine the shares drift past 5 points
@pytest.mark.alone  # so CI runs it by itself, never beside the other worker's test
def test_a_torch_cpu_trace_and_an_fx_profile_of_one_step_agree_on_each_category_share(tmp_path, mapping):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: both measurements see the same per-op cost
    try:
        block, x = attention_block()
        trace, fx_profile = profiled_steps(block, x, tmp_path)
    finally:
        torch.set_num_threads(threads)

    assert "Host_addmm" in trace and trace["batch_latency"] > 0 and "Device_Linear_bw" in fx_profile
    from_trace, from_fx = category_shares(trace, mapping), category_shares(fx_profile, mapping)

    assert (from_trace > 0).all() and (from_fx > 0).all()  # each side's names reached every category
    differences = (from_trace - from_fx).abs()
    assert (differences <= 0.05).all(), pd.DataFrame({"trace": from_trace, "fx": from_fx, "difference": differences})
