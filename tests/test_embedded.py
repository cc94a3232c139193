"""The embedded default dataset: family filter, cache location and atomic first build."""

import os
import shutil
import time

import pytest

import profcast.datasets.embedded as embedded
from profcast.datasets.embedded import (
    REPO_ROOT,
    embedded_cache_path,
    embedded_tree_path,
    load_embedded_profiles,
)
from profcast.errors import ProfcastError
from profcast.generate.exports import GENERATOR_VERSION, TFSTATS_HEADER
from profcast.generate.hardware import INSTANCES
from profcast.generate.networks import workloads
from tests.test_generate import study_runs

TINY_EXPORT = ",".join(TFSTATS_HEADER) + "\n1,Device,Conv2D,conv2d/Conv2D,1,5.0,5.0,5.0,5.0,1,1,0,0,0,0,0,Compute\n"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A cache parent holding the seed-0 study, built once for this test session."""
    parent = tmp_path_factory.mktemp("profcast-cache")
    load_embedded_profiles("all", cache_dir=parent)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)  # 5,040 files; don't leave them for pytest to prune


def test_all_family_is_the_whole_study(cache_dir):
    profiles = load_embedded_profiles("all", cache_dir=cache_dir)
    assert len(profiles) == study_runs() and profiles["instance_name"].nunique() == len(INSTANCES)
    assert (profiles.groupby(["exp_name", "instance_name"]).size() == len(workloads())).all()
    assert set(profiles.loc[profiles["instance_name"] == "g3s.xlarge", "exp_name"]) == {"exp1"}


def test_family_filters_models(cache_dir):
    cnn = load_embedded_profiles("cnn", cache_dir=cache_dir)
    rnn = load_embedded_profiles("rnn", cache_dir=cache_dir)
    assert set(cnn["model"]) == {"lenet5", "vggsmall", "resnetsmall"}
    assert set(rnn["model"]) == {"lstm", "gru", "bilstm"}
    assert len(cnn) == len(rnn) == 1260
    assert (cnn["instance_name"] == "g3s.xlarge").sum() == 45
    assert list(cnn.index) == list(range(len(cnn)))


def test_default_family_is_cnn(cache_dir):
    assert set(load_embedded_profiles(cache_dir=cache_dir)["model"]) == {"lenet5", "vggsmall", "resnetsmall"}


def test_unknown_family_lists_the_accepted_ones(cache_dir):
    with pytest.raises(ProfcastError, match=r"'transformer'.*\['all', 'cnn', 'rnn'\]"):
        load_embedded_profiles("transformer", cache_dir=cache_dir)


def test_a_cached_load_reads_the_table_without_generating_again(cache_dir, monkeypatch):
    """The cache is what makes a second job start at once (its speed is in benchmarks, not here)."""

    def must_not_generate(*args, **kwargs):
        raise AssertionError("the cached table was generated again")

    monkeypatch.setattr(embedded, "generate_tree", must_not_generate)
    assert len(load_embedded_profiles("all", cache_dir=cache_dir)) > 0


def test_cache_folder_is_named_by_generator_version_and_seed(cache_dir):
    folder = cache_dir / f"embedded-v{GENERATOR_VERSION}-seed0"
    assert sorted(p.name for p in cache_dir.iterdir()) == [folder.name]  # no staging folder left
    assert sorted(p.name for p in folder.iterdir()) == ["profiles.parquet", "tree"]


def test_tree_path_holds_the_raw_exports(cache_dir):
    tree = embedded_tree_path(cache_dir=cache_dir)
    assert tree == cache_dir / f"embedded-v{GENERATOR_VERSION}-seed0" / "tree"
    assert len(list(tree.glob("*/*/*.csv"))) == study_runs()


def test_cache_parent_comes_from_argument_then_environment_then_repo(monkeypatch, tmp_path):
    name = f"embedded-v{GENERATOR_VERSION}-seed3"
    monkeypatch.delenv("PROFCAST_CACHE_DIR", raising=False)
    assert embedded_cache_path(seed=3) == REPO_ROOT / ".cache" / "profcast" / name
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path / "env"))
    assert embedded_cache_path(seed=3) == tmp_path / "env" / name
    assert embedded_cache_path(seed=3, cache_dir=tmp_path / "arg") == tmp_path / "arg" / name


def test_bad_seed_is_an_error(tmp_path):
    with pytest.raises(ProfcastError, match="seed 'x'"):
        load_embedded_profiles(seed="x", cache_dir=tmp_path)


def test_interrupted_first_use_leaves_no_cache(monkeypatch, tmp_path):
    def generate_then_crash(out_dir, seed=0):
        (out_dir / "exp1").mkdir(parents=True)
        (out_dir / "exp1" / "half-written.csv").write_text("Rank,")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedded, "generate_tree", generate_then_crash)
    with pytest.raises(KeyboardInterrupt):
        load_embedded_profiles(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_first_use_that_finishes_first_wins(monkeypatch, tmp_path):
    final = embedded_cache_path(seed=5, cache_dir=tmp_path)

    def tiny_tree_while_another_process_finishes(out_dir, seed=0):
        folder = out_dir / "exp1" / "p3.2xlarge"
        folder.mkdir(parents=True)
        (folder / "mnist-lenet5-sgd-16.csv").write_text(TINY_EXPORT)
        # The other process renames its complete cache into place before we do.
        (final / "tree").mkdir(parents=True)
        (final / "profiles.parquet").write_bytes(b"theirs")
        return 1

    monkeypatch.setattr(embedded, "generate_tree", tiny_tree_while_another_process_finishes)
    assert embedded_tree_path(seed=5, cache_dir=tmp_path) == final / "tree"
    assert (final / "profiles.parquet").read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]


def test_a_staging_folder_left_by_a_killed_first_use_is_cleaned_up(monkeypatch, tmp_path):
    final = embedded_cache_path(seed=0, cache_dir=tmp_path)
    leftover = tmp_path / f".{final.name}-building-killed"
    (leftover / "tree").mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    os.utime(leftover, (two_hours_ago, two_hours_ago))

    def tiny_tree(out_dir, seed=0):
        folder = out_dir / "exp1" / "p3.2xlarge"
        folder.mkdir(parents=True)
        (folder / "mnist-lenet5-sgd-16.csv").write_text(TINY_EXPORT)
        return 1

    monkeypatch.setattr(embedded, "generate_tree", tiny_tree)
    profiles = load_embedded_profiles("all", cache_dir=tmp_path)
    assert len(profiles) == 1 and profiles.loc[0, "Device_Conv2D"] == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
