"""The generated stand-in study: layout, determinism and the physics it is meant to show."""

import csv
import json
import shutil

import numpy as np
import pytest

from profcast.cli import exit_code
from profcast.errors import ProfcastError
from profcast.generate.__main__ import main
from profcast.generate.exports import EXPERIMENTS, ONLY_IN_FIRST_EXPERIMENT, TFSTATS_HEADER, generate_tree
from profcast.generate.hardware import INSTANCES
from profcast.generate.networks import workloads
from profcast.ingest.tfstats import read_tfstats_tree

GPU_INSTANCES = [name for name, hw in INSTANCES.items() if hw.is_gpu]


def study_runs() -> int:
    """Runs the study's layout implies: every workload on every instance in every repetition,
    except instances profiled only in the first repetition."""
    per_repetition = len(workloads()) * len(INSTANCES)
    return per_repetition * len(EXPERIMENTS) - len(workloads()) * len(ONLY_IN_FIRST_EXPERIMENT) * (len(EXPERIMENTS) - 1)


@pytest.fixture(scope="session")
def tree_dir(tmp_path_factory):
    """The whole study generated once (seed 0) for this test session."""
    out = tmp_path_factory.mktemp("generated") / "seed0"
    assert generate_tree(out, seed=0) == study_runs()
    yield out
    shutil.rmtree(out, ignore_errors=True)  # 5,040 files; don't leave them for pytest to prune


@pytest.fixture(scope="session")
def profiles(tree_dir):
    return read_tfstats_tree(tree_dir).profiles


def _files(root, instances=None):
    """Relative path -> bytes of every file, optionally only under the given instance folders."""
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (instances is None or p.parent.name in instances)
    }


def test_tree_has_one_export_and_one_sidecar_per_run(tree_dir):
    assert len(list(tree_dir.rglob("*.csv"))) == study_runs()
    assert len(list(tree_dir.rglob("*.latency.json"))) == study_runs()
    assert sorted(p.name for p in tree_dir.iterdir()) == ["exp1", "exp2", "exp3"]
    assert not (tree_dir / "exp2" / "g3s.xlarge").exists()


def test_same_seed_gives_byte_identical_files_through_the_command_line(tree_dir, tmp_path):
    # A subset of instances is enough: each run has its own seed, so its file does not depend on
    # which other runs were generated.
    some = ["g3s.xlarge", "p3.2xlarge", "c5.4xlarge"]
    assert exit_code(main, ["--out", str(tmp_path / "again"), "--seed", "0", "--instances", ",".join(some)]) == 0
    again = _files(tmp_path / "again")
    assert len(again) == 2 * 90 * (1 + 3 + 3)
    assert again == _files(tree_dir, instances=some)


def test_different_seed_changes_the_values_but_not_the_layout(tree_dir, profiles, tmp_path):
    some = ["p2.xlarge", "c5.18xlarge"]
    assert generate_tree(tmp_path / "seed1", seed=1, instances=some) == 2 * 3 * 90
    other = read_tfstats_tree(tmp_path / "seed1").profiles
    same_runs = profiles[profiles["instance_name"].isin(some)].reset_index(drop=True)
    assert sorted(_files(tmp_path / "seed1")) == sorted(_files(tree_dir, instances=some))
    assert list(other.columns) == list(profiles.columns)
    assert other[["exp_name", "instance_name", "dataset", "model", "batchsize"]].equals(
        same_runs[["exp_name", "instance_name", "dataset", "model", "batchsize"]]
    )
    assert (other["Device_MatMul"] != same_runs["Device_MatMul"]).all()
    assert (other["batch_latency"] != same_runs["batch_latency"]).all()


def test_unknown_instance_is_an_error(tmp_path):
    with pytest.raises(ProfcastError, match=r"unknown instance\(s\) \['p4d.24xlarge'\].*'p3.2xlarge'"):
        generate_tree(tmp_path / "out", instances=["p3.2xlarge", "p4d.24xlarge"])


def test_exports_look_like_tensorboard_tf_stats(tree_dir):
    path = tree_dir / "exp1" / "p3.2xlarge" / "cifar10-resnetsmall-sgd-32.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == TFSTATS_HEADER
    assert {r["Host/device"] for r in rows} == {"Host", "Device"}
    assert [int(r["Rank"]) for r in rows] == list(range(1, len(rows) + 1))
    conv_layers = [r["Operation"] for r in rows if r["Type"] == "Conv2D"]
    assert len(conv_layers) >= 5 and all(name.endswith("/Conv2D") for name in conv_layers)
    assert any(r["Type"] == "IDLE" and r["Host/device"] == "Host" for r in rows)
    assert any(r["Type"] == "IDLE" and r["Host/device"] == "Device" for r in rows)
    sidecar = json.loads(path.with_name("cifar10-resnetsmall-sgd-32.latency.json").read_text())
    assert set(sidecar) == {"batch_latency", "epoch_latency"}
    assert sidecar["epoch_latency"] == pytest.approx(sidecar["batch_latency"] * 1563, rel=0.03)


def test_refuses_to_write_into_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(ProfcastError, match="not empty"):
        generate_tree(tmp_path)
    assert exit_code(main, ["--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_seed_must_be_a_non_negative_integer(tmp_path):
    with pytest.raises(ProfcastError, match="seed -1"):
        generate_tree(tmp_path / "out", seed=-1)


def test_study_layout(profiles):
    assert len(profiles) == study_runs()
    assert profiles["instance_name"].nunique() == len(INSTANCES)
    per_cell = profiles.groupby(["exp_name", "instance_name"]).size()
    assert (per_cell == len(workloads())).all()
    g3s_experiments = profiles.loc[profiles["instance_name"] == "g3s.xlarge", "exp_name"].unique()
    assert list(g3s_experiments) == ["exp1"]
    assert set(profiles["optimizer"]) == {"sgd", "adam"}
    assert not profiles["dataset"].str.contains("-").any()


def test_all_times_are_finite_and_non_negative(profiles):
    numbers = profiles.select_dtypes("number").drop(columns="batchsize").to_numpy()
    assert np.isfinite(numbers).all() and (numbers >= 0).all()
    assert (profiles["batch_latency"] > 0).all()


def test_every_instance_reports_the_same_ops_for_a_workload(profiles):
    ops = [c for c in profiles.columns if c.startswith(("Device_", "Host_"))]
    run = profiles[(profiles.model == "lstm") & (profiles.dataset == "imdb") & (profiles.batchsize == 64)]
    nonzero_sets = {frozenset(np.array(ops)[row > 0]) for row in run[ops].to_numpy()}
    assert len(nonzero_sets) == 1  # CPU-only c5 rows carry the same Device_* ops as the GPUs


def test_batch_norm_and_residual_ops_only_in_resnetsmall(profiles):
    cnn = profiles[profiles["optimizer"] == "sgd"]
    for op in ["Device_FusedBatchNormV3", "Device_FusedBatchNormGradV3", "Device_AddN", "Device_AddV2"]:
        runs_with_op = set(cnn.loc[cnn[op] > 0, "model"])
        assert runs_with_op == {"resnetsmall"}, op


def test_large_convolution_is_fastest_on_p3_and_slowest_on_p2(profiles):
    run = profiles[
        (profiles.model == "vggsmall")
        & (profiles.dataset == "cifar10")
        & (profiles.batchsize == 256)
        & (profiles.exp_name == "exp1")
        & profiles.instance_name.isin(GPU_INSTANCES)
    ]
    by_instance = run.set_index("instance_name")["Device_Conv2DBackpropFilter"]
    assert by_instance.idxmin() == "p3.2xlarge"
    assert by_instance.idxmax() == "p2.xlarge"


# vggsmall's convolutions already fill a T4 at batch 16, so its g3s->g4dn ratio barely moves.
@pytest.mark.parametrize(
    "model,dataset,target",
    [
        ("lenet5", "mnist", "p3.2xlarge"),
        ("vggsmall", "cifar10", "p3.2xlarge"),
        ("resnetsmall", "cifar10", "p3.2xlarge"),
        ("lenet5", "mnist", "g4dn.xlarge"),
        ("resnetsmall", "cifar10", "g4dn.xlarge"),
    ],
)
def test_anchor_to_target_conv_ratio_depends_on_batch_size(profiles, model, dataset, target):
    def ratio(batchsize):
        run = profiles[
            (profiles.model == model)
            & (profiles.dataset == dataset)
            & (profiles.batchsize == batchsize)
            & (profiles.exp_name == "exp1")
        ].set_index("instance_name")["Device_Conv2D"]
        return run["g3s.xlarge"] / run[target]

    small, large = ratio(16), ratio(256)
    assert abs(large - small) / min(large, small) > 0.20


def test_repetition_noise_is_small_on_device_ops_and_larger_on_host_ops(profiles):
    repeated = profiles[profiles["instance_name"] != "g3s.xlarge"]
    groups = repeated.groupby(["instance_name", "dataset", "model", "batchsize"])

    def median_cv(columns):
        values = groups[columns]
        cv = (values.std() / values.mean()).stack().dropna()  # ops a model never runs are 0/0
        return cv.median()

    device_ops = [c for c in profiles.columns if c.startswith("Device_") and c != "Device_IDLE"]
    host_ops = [c for c in profiles.columns if c.startswith("Host_") and c != "Host_IDLE"]
    assert 0.005 < median_cv(device_ops) < 0.03
    assert 0.04 < median_cv(host_ops) < 0.15
    assert 0.005 < median_cv(["batch_latency"]) < 0.025
