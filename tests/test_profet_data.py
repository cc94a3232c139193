"""data=profet: PROFET's pickles are hash-checked before unpickling, converted to profile rows and cached."""

from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import socket
import time
import urllib.error

import numpy as np
import pandas as pd
import pytest
from numpy._core.multiarray import _reconstruct

from profcast.config import instantiate_option
from profcast.errors import ProfcastError
from profcast.ingest import profet
from profcast.schema import LATENCY_COLUMNS, RUN_KEYS
from tests.conftest import REAL_PROFET

# The globals the four real PROFET pickles name (listed with pickletools from commit ace81bf2).
REAL_PICKLE_GLOBALS = {
    "pandas.core.frame DataFrame",
    "pandas.core.internals.managers BlockManager",
    "pandas.core.indexes.base _new_Index",
    "pandas.core.indexes.base Index",
    "pandas.core.indexes.numeric Int64Index",
    "numpy.core.multiarray _reconstruct",
    "numpy ndarray",
    "numpy dtype",
    "builtins slice",
}
INSTANCE_FILES = {
    "g3s.xlarge": "anchor_g3.pickle",
    "g4dn.xlarge": "anchor_g4.pickle",
    "p2.xlarge": "anchor_p2.pickle",
    "p3.2xlarge": "anchor_p3.pickle",
}


# --- writing pickles the way pandas 1.x / numpy 1.x wrote PROFET's files ---------------------------


class _Global:
    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _New:
    """cls.__new__(cls), then BUILD(state): how pandas 1.x wrote a DataFrame and its BlockManager."""

    def __init__(self, cls: _Global, state):
        self.cls, self.state = cls, state


class _Call:
    """func(*args): how pandas 1.x wrote an Index."""

    def __init__(self, func: _Global, args: tuple):
        self.func, self.args = func, args


class _LegacyPickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_named_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def _save_new(self, obj):
        self.save(obj.cls)
        self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
        self.save(obj.state)
        self.write(pickle.BUILD)

    def _save_call(self, obj):
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)

    dispatch[_Global] = _save_named_global
    dispatch[_New] = _save_new
    dispatch[_Call] = _save_call

    def save_global(self, obj, name=None):
        if obj is _reconstruct:  # numpy 1.x lived at numpy.core, numpy 2 at numpy._core
            self._save_named_global(_Global("numpy.core.multiarray", "_reconstruct"))
        else:
            super().save_global(obj, name)


def legacy_frame_pickle(frame: pd.DataFrame) -> bytes:
    """``frame`` pickled (protocol 3) in the layout of PROFET's pandas-1.x files: one block per dtype run."""

    def index(values, cls):
        return _Call(_Global("pandas.core.indexes.base", "_new_Index"), (cls, {"data": values, "name": None}))

    axes = [
        index(np.array(list(frame.columns), dtype=object), _Global("pandas.core.indexes.base", "Index")),
        index(np.arange(len(frame), dtype=np.int64), _Global("pandas.core.indexes.numeric", "Int64Index")),
    ]
    kinds = [np.dtype(object) if frame[c].dtype.kind not in "if" else frame[c].dtype for c in frame.columns]
    blocks, start = [], 0
    for stop in range(1, len(kinds) + 1):
        if stop == len(kinds) or kinds[stop] != kinds[start]:
            values = frame.iloc[:, start:stop].to_numpy(dtype=kinds[start]).T.copy()
            blocks.append({"values": values, "mgr_locs": slice(start, stop, 1)})
            start = stop
    manager_state = (
        axes,
        [b["values"] for b in blocks],
        [b["mgr_locs"] for b in blocks],
        {"0.14.1": {"axes": axes, "blocks": blocks}},
    )
    manager = _New(_Global("pandas.core.internals.managers", "BlockManager"), manager_state)
    state = {"_mgr": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}}
    buffer = io.BytesIO()
    _LegacyPickler(buffer, protocol=3).dump(_New(_Global("pandas.core.frame", "DataFrame"), state))
    return buffer.getvalue()


def pickle_globals(data: bytes) -> set[str]:
    return {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


# --- a small PROFET-shaped dataset ------------------------------------------------------------------


def profet_rows(models=("ResNet18", "VGG11", "VGG16", "MobileNetV2")) -> pd.DataFrame:
    """Two repetitions of each model on each instance; Device_Relu6 is MobileNetV2's own op."""
    rows = []
    for speed, instance in enumerate(INSTANCE_FILES, start=1):
        for exp in ("exp01", "exp02"):
            for size, model in enumerate(models, start=1):
                batch_latency = 0.01 * size / speed
                rows.append(
                    {
                        "exp_name": exp,
                        "instance_name": instance,
                        "dataset": "32dataset",
                        "model": model,
                        "optimizer": "SGD",
                        "batchsize": 64,
                        "batch_latency": batch_latency,
                        "epoch_latency": 100 * batch_latency,
                        "Device_Conv2D": 1000.0 * size / speed + (exp == "exp02"),
                        "Host_IDLE": 5000.0 / speed,
                        "Device_Relu6": 70.0 / speed if model == "MobileNetV2" else 0.0,
                    }
                )
    return pd.DataFrame(rows)


def anchor_frame(rows: pd.DataFrame, instance: str) -> pd.DataFrame:
    """One PROFET anchor file: ops, keys, latencies, then each other instance's batch latency in us."""
    own = rows[rows["instance_name"] == instance].reset_index(drop=True)
    ops = [c for c in rows.columns if c.startswith(("Device_", "Host_"))]
    frame = own[ops + RUN_KEYS + ["epoch_latency", "batch_latency"]].copy()
    workload = ["exp_name", "dataset", "model", "optimizer", "batchsize"]
    for other in INSTANCE_FILES:
        if other != instance:
            latency = rows[rows["instance_name"] == other].set_index(workload)["batch_latency"] * 1e6
            frame[other] = latency.reindex(pd.MultiIndex.from_frame(own[workload])).to_numpy()
    return frame


@pytest.fixture
def profet_folder(tmp_path, monkeypatch):
    """A cache folder holding four legacy-format anchor pickles; their hashes are the pinned ones."""

    def make(rows: pd.DataFrame):
        folder = tmp_path / "profet"
        folder.mkdir(exist_ok=True)
        hashes = {}
        for instance, name in INSTANCE_FILES.items():
            data = legacy_frame_pickle(anchor_frame(rows, instance))
            (folder / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        monkeypatch.setattr(profet, "PROFET_FILES", hashes)
        return folder

    return make


def test_synthetic_pickles_name_the_same_globals_as_the_real_files():
    assert pickle_globals(legacy_frame_pickle(anchor_frame(profet_rows(), "g3s.xlarge"))) == REAL_PICKLE_GLOBALS
    assert set(f"{module} {name}" for module, name in profet.ALLOWED_GLOBALS) == REAL_PICKLE_GLOBALS


def test_conversion_keeps_every_run_and_value_and_drops_the_copied_target_latencies(profet_folder):
    rows = profet_rows()
    table = profet.load_profet_profiles(all_models=True, cache_dir=profet_folder(rows))
    assert list(table.columns) == RUN_KEYS + LATENCY_COLUMNS + ["Device_Conv2D", "Host_IDLE", "Device_Relu6"]
    merged = rows.merge(table, on=RUN_KEYS, suffixes=("_in", "_out"), validate="one_to_one")
    assert len(merged) == len(rows) == len(table)
    for column in LATENCY_COLUMNS + ["Device_Conv2D", "Host_IDLE", "Device_Relu6"]:
        np.testing.assert_array_equal(merged[f"{column}_in"], merged[f"{column}_out"])


def test_default_table_leaves_out_the_three_models_and_their_unused_ops(profet_folder):
    table = profet.load_profet_profiles(cache_dir=profet_folder(profet_rows()))
    assert sorted(table["model"].unique()) == ["ResNet18", "VGG11"]
    assert "Device_Relu6" not in table.columns  # only MobileNetV2 ran it


def test_converted_table_is_cached_and_read_without_the_pickles(profet_folder):
    folder = profet_folder(profet_rows())
    first = profet.load_profet_profiles(cache_dir=folder)
    for name in profet.PROFET_FILES:
        (folder / name).unlink()
    assert (folder / profet.TABLE_FILE).is_file()
    pd.testing.assert_frame_equal(profet.load_profet_profiles(cache_dir=folder), first)
    assert [p.name for p in folder.iterdir()] == [profet.TABLE_FILE]  # no staging file left behind


class _CreatesFile:
    """Unpickling this opens (creates) a file: the stand-in for a pickle that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_file_with_the_wrong_hash_is_refused_before_unpickling(tmp_path, profet_folder):
    folder = profet_folder(profet_rows())
    evidence = tmp_path / "unpickled.txt"
    hostile = pickle.dumps(_CreatesFile(evidence), protocol=3)
    pickle.loads(hostile)  # the payload does create the file when unpickled plainly...
    assert evidence.exists()
    evidence.unlink()
    (folder / "anchor_g4.pickle").write_bytes(hostile)
    with pytest.raises(ProfcastError, match=r"anchor_g4\.pickle: SHA-256 .* refusing to unpickle"):
        profet.load_profet_profiles(cache_dir=folder)
    assert not evidence.exists()  # ...and the loader never unpickled it


def test_a_matching_hash_still_cannot_name_other_callables(tmp_path):
    evidence = tmp_path / "unpickled.txt"
    hostile = pickle.dumps(_CreatesFile(evidence), protocol=3)
    path = tmp_path / "anchor_g3.pickle"
    path.write_bytes(hostile)
    with pytest.raises(ProfcastError, match=r"anchor_g3\.pickle: refusing global io\.open"):
        profet.read_profet_pickle(path, hashlib.sha256(hostile).hexdigest())
    assert not evidence.exists()


def _raise_offline(url, timeout=None):
    raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))


def test_offline_download_fails_in_one_line_naming_the_url_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", _raise_offline)
    folder = tmp_path / "cache"
    with pytest.raises(ProfcastError) as caught:
        profet.load_profet_profiles(cache_dir=folder)
    message = str(caught.value)
    assert "\n" not in message
    assert profet.profet_url("anchor_g3.pickle") in message and str(folder) in message
    assert all(name in message for name in profet.PROFET_FILES)
    assert list(folder.iterdir()) == []


def test_unreachable_server_fails_fast(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(profet, "profet_url", lambda name: f"http://127.0.0.1:{port}/{name}")
    started = time.monotonic()
    with pytest.raises(ProfcastError, match=rf"127\.0\.0\.1:{port}/anchor_g3\.pickle failed .* into {tmp_path}"):
        profet.download_profet(tmp_path, timeout=5)
    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_writes_verified_files_and_refuses_altered_bytes(tmp_path, monkeypatch):
    payload = {name: f"bytes of {name}".encode() for name in profet.PROFET_FILES}
    monkeypatch.setattr(profet, "PROFET_FILES", {n: hashlib.sha256(b).hexdigest() for n, b in payload.items()})
    served = dict(payload)
    monkeypatch.setattr("urllib.request.urlopen", lambda url, timeout=None: _Response(served[url.rsplit("/", 1)[1]]))
    written = profet.download_profet(tmp_path / "ok")
    assert {p.name: p.read_bytes() for p in written} == payload
    served["anchor_p2.pickle"] = b"altered in transit"
    with pytest.raises(ProfcastError, match=r"anchor_p2\.pickle: SHA-256 .* not saved"):
        profet.download_profet(tmp_path / "altered")
    assert sorted(p.name for p in (tmp_path / "altered").iterdir()) == ["anchor_g3.pickle", "anchor_g4.pickle"]


def test_cache_folder_follows_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(tmp_path))
    assert profet.profet_cache_dir() == tmp_path / "profet"
    monkeypatch.delenv("PROFCAST_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert profet.profet_cache_dir() == tmp_path / "home" / ".cache" / "profcast" / "profet"


def test_data_profet_config_loads_through_load_profiles(profet_folder, monkeypatch, compose_config):
    folder = profet_folder(profet_rows())
    monkeypatch.setenv("PROFCAST_CACHE_DIR", str(folder.parent))
    cfg = compose_config(["data=profet", "data.all_models=true"])
    assert sorted(instantiate_option("data", cfg.data).load()["model"].unique()) == [
        "MobileNetV2",
        "ResNet18",
        "VGG11",
        "VGG16",
    ]


def test_converted_rows_of_the_real_table_come_back_unchanged(profet_folder):
    """Real rows, written as PROFET pickles and converted, give back the shared table's columns and values."""
    if not REAL_PROFET.exists():
        pytest.skip(f"real PROFET data not found at {REAL_PROFET}")
    shared = pd.read_csv(REAL_PROFET)
    workloads = shared[["exp_name", "dataset", "model", "optimizer", "batchsize"]].drop_duplicates()
    picked = workloads.sample(20, random_state=0)
    rows = shared.merge(picked)
    # Op columns in another order than the shared table's: the converter must match them by name.
    ops = [c for c in shared.columns if c.startswith(("Device_", "Host_"))]
    table = profet.load_profet_profiles(
        all_models=True, cache_dir=profet_folder(rows[RUN_KEYS + LATENCY_COLUMNS + ops[::-1]])
    )
    assert set(table.columns) == set(shared.columns)
    assert len(table) == 4 * len(picked)
    merged = table.merge(rows, on=RUN_KEYS, suffixes=("_out", "_in"), validate="one_to_one")
    for column in LATENCY_COLUMNS + ops:
        np.testing.assert_array_equal(merged[f"{column}_out"], merged[f"{column}_in"])
