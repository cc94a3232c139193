"""NeuSight label files: the reader, content dispatch, data=neusight's manifest check and offline message, the GPU catalogue."""

from __future__ import annotations

import csv
import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profcast.errors import ProfcastError
from profcast.ingest.neusight import instance_slug, op_kind, read_neusight_label
from profcast.ingest.neusight_data import load_neusight_profiles, select_mode
from profcast.ingest.pinned_files import NEUSIGHT_LABELS, read_manifest
from profcast.ingest.profile_files import profile_kind, read_profile_tree
from profcast.regressors.whatif import input_size

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "neusight"
LABELS = SHARED / "scripts" / "asplos" / "label"
V100_GPT2 = LABELS / "Tesla_V100-PCIE-32GB" / "gpt2_large-train-1024-1.csv"
needs_shared = pytest.mark.skipif(not V100_GPT2.is_file(), reason="NeuSight data not in ../shared/data/neusight")

HEADER = ["op", "target", "meta", "input_shapes", "latency", "fw_latency", "bw_latency", "acc_latency", "Name"]
STACK = "{'nn_module_stack': OrderedDict([('model', <class 'x.Model'>)%s])}"


def node(op, target, modules=(), fw=0.0, bw=0.0, acc=0.0):
    """One FX-node row as NeuSight writes it; ``modules`` are (path, class) pairs below the model."""
    entries = "".join(f", ('{path}', <class 'x.{cls}'>)" for path, cls in modules)
    return {
        "op": op,
        "target": target,
        "meta": STACK % entries,
        "input_shapes": "[]",
        "latency": fw + bw + acc,
        "fw_latency": fw,
        "bw_latency": bw,
        "acc_latency": acc,
        "Name": target,
    }


def write_label(folder: Path, name: str, nodes: list[dict], num_layer: int, e2e_ms: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(nodes)
    (folder / f"{name}.json").write_text(json.dumps({"num_layer": num_layer, "e2e_latency": e2e_ms}))
    return path


TOY_TRAIN = [
    node("placeholder", "input_ids"),
    node("call_module", "model.embed", [("model.embed", "Embedding")], fw=0.5, bw=0.25, acc=0.125),
    node("call_module", "model.h.0.fc", [("model.h.0", "Block"), ("model.h.0.fc", "Linear")], fw=2.0, bw=4.0, acc=0.5),
    node("call_function", "<built-in method matmul of type object at 0x1>", [("model.h.0", "Block")], fw=1.0, bw=2.0),
    node("call_method", "view", [("model.h.0", "Block")], fw=0.01),
    node("call_module", "model.head", [("model.head", "Linear")], fw=3.0, bw=6.0, acc=1.0),
    node("call_function", "<function softmax at 0x2>", [("model.head", "Linear")], fw=0.5, bw=0.5),
    node("output", "output"),
]


def test_reader_counts_the_traced_layer_num_layer_times_and_the_rest_once(tmp_path):
    path = write_label(tmp_path / "NVIDIA_H100_80GB_HBM3", "toy-train-128-4", TOY_TRAIN, num_layer=10, e2e_ms=250.0)
    row = read_neusight_label(path)
    assert {k: row[k] for k in ("exp_name", "instance_name", "dataset", "model", "optimizer", "batchsize")} == {
        "exp_name": "exp1",
        "instance_name": "h100-80gb-hbm3",
        "dataset": "128tokens",
        "model": "toy",
        "optimizer": "train",
        "batchsize": 4,
    }
    assert row["batch_latency"] == pytest.approx(0.25)
    # Linear: the layer's fc 10 times plus the head once, in microseconds.
    assert row["Device_Linear_fw"] == pytest.approx((2.0 * 10 + 3.0) * 1000)
    assert row["Device_Linear_bw"] == pytest.approx((4.0 * 10 + 6.0) * 1000)
    assert row["Device_Linear_acc"] == pytest.approx((0.5 * 10 + 1.0) * 1000)
    assert row["Device_matmul_fw"] == pytest.approx(10_000) and row["Device_matmul_bw"] == pytest.approx(20_000)
    assert row["Device_view_fw"] == pytest.approx(100)
    assert row["Device_softmax_fw"] == pytest.approx(500)  # under the head, not the layer: once
    assert row["Device_Embedding_acc"] == pytest.approx(125)
    # A phase no node of that kind has (view, matmul accumulation) is no column at all.
    assert "Device_view_bw" not in row and "Device_matmul_acc" not in row


def test_inference_files_give_forward_columns_only(tmp_path):
    nodes = [
        node("call_module", "model.layers.0.fc", [("model.layers.0", "Block"), ("model.layers.0.fc", "Linear")], fw=1.5)
    ]
    row = read_neusight_label(write_label(tmp_path / "Tesla_T4", "opt_13-inf-2048-2", nodes, 24, 40.0))
    assert row["instance_name"] == "t4" and row["optimizer"] == "inf" and row["dataset"] == "2048tokens"
    assert {k for k in row if k.startswith("Device_")} == {"Device_Linear_fw"}
    assert row["Device_Linear_fw"] == pytest.approx(1.5 * 24 * 1000)


@pytest.mark.parametrize(
    "folder, slug",
    [
        ("NVIDIA_H100_80GB_HBM3", "h100-80gb-hbm3"),
        ("Tesla_V100-PCIE-32GB", "v100-pcie-32gb"),
        ("NVIDIA_A100-PCIE-40GB", "a100-pcie-40gb"),
        ("AMD_Instinct_MI250", "mi250"),
        ("NVIDIA_L4", "l4"),
        ("MI100", "mi100"),
    ],
)
def test_instance_slug(folder, slug):
    assert instance_slug(folder) == slug


def test_op_kinds_are_sanitised_names():
    assert op_kind(node("call_function", "<built-in function getitem>")) == "getitem"
    assert op_kind(node("call_function", "<class 'torch.finfo'>")) == "finfo"
    assert op_kind(node("call_method", "contiguous")) == "contiguous"
    assert op_kind(node("call_module", "h.0.act", [("h.0.act", "NewGELUActivation")])) == "NewGELUActivation"
    assert op_kind(node("call_method", "weird-name.x")) == "weird_name_x"
    assert op_kind(node("get_attr", "h.0.bias")) is None and op_kind(node("placeholder", "x")) is None


def test_bad_label_files_are_one_line_errors(tmp_path):
    folder = tmp_path / "NVIDIA_L4"
    path = write_label(folder, "toy-train-128-4", TOY_TRAIN, 2, 10.0)
    (folder / "toy-train-128-4.json").write_text(json.dumps({"num_layer": 0, "e2e_latency": 10.0}))
    with pytest.raises(ProfcastError, match="num_layer 0 is not a positive integer"):
        read_neusight_label(path)
    (folder / "toy-train-128-4.json").unlink()
    with pytest.raises(ProfcastError, match="no toy-train-128-4.json beside it"):
        read_neusight_label(path)
    bad = write_label(folder, "toy-inf-128-4", [node("call_method", "view", fw=-1.0)], 2, 10.0)
    with pytest.raises(ProfcastError, match="line 2, column fw_latency"):
        read_neusight_label(bad)


def test_folders_recognise_label_files_by_content_and_skip_step_time_json(tmp_path):
    root = tmp_path / "labels"
    write_label(root / "NVIDIA_L4", "toy-train-128-4", TOY_TRAIN, 3, 30.0)
    write_label(root / "NVIDIA_L4", "toy-inf-128-4", TOY_TRAIN[:3], 3, 10.0)
    write_label(root / "Tesla_T4", "toy-inf-128-4", TOY_TRAIN[:3], 3, 20.0)
    (root / "NVIDIA_L4" / "toy-train-128-16-dp4.json").write_text(json.dumps({"num_layer": 3, "e2e_latency": 5.0}))
    assert profile_kind(root / "NVIDIA_L4" / "toy-train-128-4.csv") == "neusight"
    tree = read_profile_tree(root)
    table = tree.profiles
    assert tree.n_files == 3 and not tree.skipped
    assert sorted(zip(table["instance_name"], table["optimizer"])) == [("l4", "inf"), ("l4", "train"), ("t4", "inf")]
    assert table.loc[table["instance_name"] == "t4", "batch_latency"].item() == pytest.approx(0.02)


def test_predict_reads_a_label_file_as_the_anchor_profile(tmp_path):
    from profcast.forecast.profile_input import read_anchor_profile

    path = write_label(tmp_path / "NVIDIA_L4", "toy-train-128-4", TOY_TRAIN, 3, 30.0)
    profile = read_anchor_profile(path, "l4")
    assert profile.kind == "NeuSight label file" and profile.batchsize == 4 and profile.dataset == "128tokens"
    assert profile.measured_latency == pytest.approx(0.03)
    assert input_size(profile.dataset) == 128  # the what-if reads the sequence length as the input size


@needs_shared
def test_reader_on_a_real_file_matches_a_hand_sum():
    row = read_neusight_label(V100_GPT2)
    with open(V100_GPT2, newline="") as handle:
        nodes = list(csv.DictReader(handle))
    layers = json.loads(V100_GPT2.with_suffix(".json").read_text())["num_layer"]
    norms = [n for n in nodes if n["op"] == "call_module" and n["target"].endswith(("ln_1", "ln_2", "ln_f"))]
    expected = sum(float(n["bw_latency"]) * (layers if ".h.0." in n["target"] else 1) for n in norms) * 1000
    assert len(norms) == 3 and row["Device_LayerNorm_bw"] == pytest.approx(expected)
    assert row["instance_name"] == "v100-pcie-32gb" and row["model"] == "gpt2_large" and row["batchsize"] == 1
    total = sum(v for k, v in row.items() if k.startswith("Device_")) / 1e6
    assert 0.8 < total / row["batch_latency"] < 1.3  # node times x layers come close to the measured step


@needs_shared
def test_shared_folder_loads_though_it_lacks_a_manifest_family(tmp_path, caplog):
    caplog.set_level("INFO")
    table = load_neusight_profiles(path=SHARED, cache_dir=tmp_path)
    assert "opt_13" not in set(table["model"]) and {"bert_large", "gpt2_large"} <= set(table["model"])
    assert "absent" in caplog.text
    assert set(table["optimizer"]) == {"train", "inf"}
    inference = select_mode(table, "inf", source="test")
    assert set(inference["optimizer"]) == {"inf"} and not any(c.endswith(("_bw", "_acc")) for c in inference.columns)
    assert list(load_neusight_profiles(path=SHARED, cache_dir=tmp_path).columns) == list(
        table.columns
    )  # from the cache


def copy_some(tmp_path: Path, names: list[str]) -> Path:
    """A repository-layout copy of a few V100 label files."""
    root = tmp_path / "copy"
    for name in names:
        source = LABELS / "Tesla_V100-PCIE-32GB" / name
        target = root / "scripts" / "asplos" / "label" / "Tesla_V100-PCIE-32GB" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return root


@needs_shared
def test_manifest_refuses_a_tampered_file_before_parsing(tmp_path):
    names = [
        "bert_large-train-512-2.csv",
        "bert_large-train-512-2.json",
        "gpt2_large-train-1024-1.csv",
        "gpt2_large-train-1024-1.json",
    ]
    root = copy_some(tmp_path, names)
    table = load_neusight_profiles(path=root, cache_dir=tmp_path / "cache")
    assert len(table) == 2
    tampered = root / "scripts" / "asplos" / "label" / "Tesla_V100-PCIE-32GB" / "gpt2_large-train-1024-1.json"
    data = bytearray(tampered.read_bytes())
    data[data.index(b"36")] = ord("9")  # same size, num_layer 96: only the hash can tell
    tampered.write_bytes(bytes(data))
    with pytest.raises(ProfcastError, match=r"gpt2_large-train-1024-1\.json: SHA-256 .* does not match") as error:
        load_neusight_profiles(path=root, cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value)
    tampered.write_bytes(bytes(data) + b" ")
    with pytest.raises(ProfcastError, match="bytes, but .* has"):
        load_neusight_profiles(path=root, cache_dir=tmp_path / "cache")


def test_offline_without_files_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path))
    with pytest.raises(ProfcastError) as error:
        load_neusight_profiles()
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "neusight") in message and "cannot download" in message


def test_shipped_manifest_lists_label_files_of_the_pinned_commit():
    entries = NEUSIGHT_LABELS.entries()
    assert len(entries) > 100 and all(e.path.startswith("scripts/asplos/label/") for e in entries)
    assert all(e.path.endswith((".csv", ".json")) and len(e.sha256) == 64 and e.size > 0 for e in entries)
    if (SHARED / "MANIFEST.sha256").is_file():
        assert read_manifest(SHARED / "MANIFEST.sha256") == entries


def test_data_option_checks_mode():
    from profcast.datasets.sources import NeusightData

    with pytest.raises(ProfcastError, match="unknown data.mode 'training'"):
        NeusightData(mode="training")


def test_gpu_catalogue_adds_neusight_gpus_and_keeps_instances():
    from profcast.catalogue import load_catalogue

    catalogue = load_catalogue()
    assert catalogue["p3.2xlarge"]["price_per_hour"] == 3.06  # an instance row as before
    assert catalogue["l4"]["price_per_hour"] > 0 and "g6.xlarge" in catalogue["l4"]["gpu"]
    assert np.isnan(catalogue["h100-80gb-hbm3"]["price_per_hour"])  # no single-H100 instance priced


def test_gpu_catalogue_names_every_neusight_gpu_folder():
    from omegaconf import OmegaConf

    from profcast.catalogue import GPU_CATALOGUE

    gpus = OmegaConf.to_container(OmegaConf.load(GPU_CATALOGUE))["gpus"]
    assert all(instance_slug(gpu["neusight_folder"]) == name for name, gpu in gpus.items())
    folders = {Path(e.path).parts[3] for e in NEUSIGHT_LABELS.entries()}
    assert folders == {gpu["neusight_folder"] for gpu in gpus.values()}


@needs_shared
def test_published_errors_parse_the_summary_tables():
    from benchmarks.neusight_comparison import SUMMARY, published_errors

    published = published_errors(SHARED / SUMMARY)
    h100 = published.set_index(["target", "mode", "model", "batchsize"])["published_error"]
    # first NeuSight cell of nvidia_train.csv (H100, BERT-Large batch 2) and of amd_inf.csv (MI100, BERT-Large batch 8)
    assert h100[("h100-80gb-hbm3", "train", "bert_large", 2)] == 14.0
    assert h100[("mi100", "inf", "bert_large", 8)] == 17.0
    assert set(published["target"]) <= {instance_slug(Path(e.path).parts[3]) for e in NEUSIGHT_LABELS.entries()}


def test_pairs_need_enough_shared_workloads_of_two_models():
    from benchmarks.accuracy import parse_pairs

    rows = [
        ("a", "m1", 1),
        ("a", "m1", 2),
        ("a", "m2", 1),
        ("b", "m1", 1),
        ("b", "m1", 2),
        ("b", "m2", 1),
        ("c", "m1", 1),
        ("c", "m1", 2),
    ]
    profiles = pd.DataFrame(rows, columns=["instance_name", "model", "batchsize"]).assign(
        dataset="8tokens", optimizer="inf"
    )
    assert parse_pairs("all", ["a", "b", "c"], profiles, min_shared=3) == [("a", "b"), ("b", "a")]
    assert len(parse_pairs("all", ["a", "b", "c"], profiles, min_shared=0)) == 6


def test_size_whatif_with_few_pairs_learns_a_growth_law():
    from profcast.regressors.whatif import SizeGrowthLaw, SizeWhatIf

    # Two models, each at two batch sizes; step time grows as batch^0.8 (too few pairs for a tree).
    keys = pd.DataFrame(
        {
            "dataset": "512tokens",
            "model": ["a", "a", "b", "b"],
            "optimizer": "train",
            "batchsize": [2, 8, 1, 4],
            "anchor_exp": "exp1",
            "target_exp": "exp1",
        }
    )
    latency = np.array([1.0 * 2**0.8, 1.0 * 8**0.8, 3.0, 3.0 * 4**0.8])
    anchor = pd.DataFrame({"Device_Linear_fw": latency * 5e5, "batch_latency": latency / 2})
    target = pd.DataFrame({"Device_Linear_fw": latency * 1e6, "batch_latency": latency})
    what_if = SizeWhatIf(predict_ops=False).fit(keys, anchor, target)
    assert isinstance(what_if.latency_model_, SizeGrowthLaw)
    scale = what_if.log_scale(anchor.iloc[[0]], [2], ["512tokens"], [4], ["512tokens"])
    assert scale[0] == pytest.approx(0.8 * np.log(2))  # doubling the batch: 2^0.8, not "no growth"


def test_intervals_from_few_groups_reach_beyond_their_biases():
    from scipy.stats import t

    from profcast.regressors.intervals import ConformalInterval

    residuals = np.repeat([-0.1, 0.0, 0.1], 4)  # three held-out models, each misjudged alike
    groups = np.repeat([0, 1, 2], 4)
    low, high = ConformalInterval().fit(residuals, groups=groups).quantiles_
    # A new model's bias: mean +- t(2 dof, 90%) x s x sqrt(1 + 1/3), s = 0.1
    expected = t.ppf(0.9, 2) * 0.1 * np.sqrt(4 / 3)
    assert low < -0.1 and high > 0.1
    assert high == pytest.approx(expected, rel=0.02) and low == pytest.approx(-expected, rel=0.02)


@needs_shared
def test_a_neusight_checkout_reads_as_a_data_file_folder_and_converts(tmp_path):
    from profcast.convert import convert
    from profcast.datasets.sources import FileData

    names = [
        "bert_large-inf-512-8.csv",
        "bert_large-inf-512-8.json",
        "gpt2_large-inf-1024-4.csv",
        "gpt2_large-inf-1024-4.json",
    ]
    root = copy_some(tmp_path, names)
    (root / "README.md").write_text("not a profile")
    table = FileData(str(root)).load()
    assert sorted(table["model"]) == ["bert_large", "gpt2_large"] and set(table["instance_name"]) == {"v100-pcie-32gb"}
    converted = convert([root]).profiles
    by_model = [frame.set_index("model")["batch_latency"].sort_index() for frame in (converted, table)]
    assert list(by_model[0]) == pytest.approx(list(by_model[1]))
