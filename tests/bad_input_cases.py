"""Bad files, crafted model folders and helpers for tests/test_bad_input.py (the hostile-but-honest user matrix)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.commands import PYTHON, run_command, start_command  # noqa: F401 (the shared command helpers)
from tests.conftest import synthetic_profiles

OP = "Device_Relu"  # an op column of the synthetic table


def write_bad_tables(folder: Path) -> dict[str, Path]:
    """One CSV per kind of bad table, named by the case; data row 3 is the bad one where a row is."""
    good = synthetic_profiles()
    files = {}

    def table(name, frame, **to_csv):
        files[name] = folder / f"{name}.csv"
        frame.to_csv(files[name], **{"index": False, **to_csv})

    table("pandas_index", good, index=True)  # 'Unnamed: 0' column
    for name, column, value in [
        ("huge_op", "Device_Conv2D", 1e300),
        ("huge_latency", "batch_latency", 5e6),
        ("negative_op", OP, -1.0),
        ("text_op", OP, "12ms"),
        ("inf_op", OP, np.inf),
        ("zero_batchsize", "batchsize", 0),
    ]:
        bad = good.copy().astype({column: object})
        bad.loc[3, column] = value
        table(name, bad)
    zeros = good.copy()
    zeros[[c for c in zeros.columns if c.startswith(("Device_", "Host_"))]] = 0.0
    table("all_zero_ops", zeros)
    table("duplicate_run", pd.concat([good, good.iloc[[3]]], ignore_index=True))
    table("missing_key", good.drop(columns=["model"]))
    files["utf16"] = folder / "utf16.csv"
    files["utf16"].write_bytes(good.to_csv(index=False).encode("utf-16"))
    files["latin1"] = folder / "latin1.csv"
    files["latin1"].write_bytes(good.assign(dataset="mnïst").to_csv(index=False).encode("latin-1"))
    files["empty"] = folder / "empty.csv"
    files["empty"].write_text("")
    files["binary"] = folder / "binary.csv"
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["truncated_gzip"] = folder / "cut.csv.gz"
    good.to_csv(folder / "whole.csv.gz", index=False)
    files["truncated_gzip"].write_bytes((folder / "whole.csv.gz").read_bytes()[:300])
    return files


TFSTATS_HEADER = "Rank,Host/device,Type,Operation,#Occurrences,Total time (us),Avg. time (us),Total self-time (us),Avg. self-time (us)\n"


def write_export_tree(folder: Path, bad: dict[str, bytes] | None = None) -> Path:
    """A tf_stats folder (<exp>/<instance>/<dataset>-<model>-<opt>-<batch>.csv) from the synthetic table, plus ``bad`` files."""
    for row in synthetic_profiles().to_dict("records"):
        path = (
            folder
            / row["exp_name"]
            / row["instance_name"]
            / f"{row['dataset']}-{row['model']}-sgd-{row['batchsize']}.csv"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [TFSTATS_HEADER]
        for rank, (column, value) in enumerate((c, v) for c, v in row.items() if c.startswith(("Device_", "Host_"))):
            where, op = column.split("_", 1)
            lines.append(f"{rank + 1},{where},{op},{op}_1,1,{value},{value},{value},{value}\n")
        path.write_text("".join(lines))
        (path.parent / (path.stem + ".latency.json")).write_text(json.dumps({"batch_latency": row["batch_latency"]}))
    for name, content in (bad or {}).items():
        (folder / "exp1" / "slow.gpu" / name).write_bytes(content)
    return folder


BAD_EXPORTS = {
    "mnist-zzz-sgd-32.csv": (TFSTATS_HEADER + "1,Device,Conv2D,c,1,5,5,5,5\n").encode("utf-16"),
    "mnist-yyy-sgd-32.csv": (TFSTATS_HEADER + "1,Device,Conv\xe92D,c,1,5,5,5,5\n").encode("latin-1"),
}


# A module whose import creates a file: a model file that names one of its types would run it when loaded blindly.
PAYLOAD_MODULE = """
from pathlib import Path
Path({marker!r}).write_text("code from a model file ran")

class Payload:
    pass
"""


class FilePlantingPickle:
    """Unpickling this creates ``marker`` (what a hostile pickle does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code from a model file ran"))


def craft_model_folders(good_model: Path, folder: Path, marker: Path) -> dict[str, Path]:
    """Copies of a good job model folder whose first skops file, or MLmodel, would create ``marker`` when loaded.

    - ``untrusted_skops``: a real skops file naming a type from a module whose import writes the marker;
    - ``pickle_as_skops``: a pickle (that writes the marker) where the skops file belongs;
    - ``cloudpickle_mlmodel``: an MLmodel that asks MLflow to unpickle a python_model (that writes the marker).
    Returns {name: model folder}; the payload module sits in ``folder/payload`` (put it on sys.path to arm it).
    """
    import skops.io

    payload_dir = folder / "payload"
    payload_dir.mkdir(parents=True)
    (payload_dir / "planted_payload.py").write_text(PAYLOAD_MODULE.format(marker=str(marker)))
    sys.path.insert(0, str(payload_dir))
    try:
        import planted_payload

        skops_bytes = skops.io.dumps({"model": planted_payload.Payload()})
    finally:
        sys.path.remove(str(payload_dir))
        sys.modules.pop("planted_payload", None)
        marker.unlink(missing_ok=True)  # crafting imported it once; the tests start clean
    crafted = {}
    for name in ("untrusted_skops", "pickle_as_skops", "cloudpickle_mlmodel"):
        target = folder / name
        shutil.copytree(good_model, target)
        data = next(p for p in (target / "data").iterdir() if p.is_dir())
        skops_file = data / "target0.skops"  # the first target's regressor (its extras file sits beside it)
        if name == "untrusted_skops":
            skops_file.write_bytes(skops_bytes)
        elif name == "pickle_as_skops":
            skops_file.write_bytes(pickle.dumps(FilePlantingPickle(marker)))
        else:
            (target / "python_model.pkl").write_bytes(pickle.dumps(FilePlantingPickle(marker)))
            mlmodel = (target / "MLmodel").read_text()
            mlmodel = mlmodel.replace(
                "loader_module: profcast.serve.loader",
                "loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl",
            )
            (target / "MLmodel").write_text(mlmodel)
        crafted[name] = target
    return crafted


def wait_for(condition, seconds: float, what: str):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def signal_group(process: subprocess.Popen, number=signal.SIGINT, seconds: float = 60) -> int:
    """Send ``number`` to the process group and return its exit code (killing it if it hangs)."""
    os.killpg(process.pid, number)
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"the command did not stop within {seconds:.0f} s of signal {number}")


def runs_in(uri: str) -> pd.DataFrame:
    """Every run of every experiment in the store (empty frame for a new store)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    rows = []
    for run in client.search_runs(experiments, max_results=10000) if experiments else []:
        rows.append(
            {
                "run_id": run.info.run_id,
                "status": run.info.status,
                "name": run.info.run_name,
                "parent": run.data.tags.get("mlflow.parentRunId"),
                **{f"params.{k}": v for k, v in run.data.params.items()},
                **{f"tags.{k}": v for k, v in run.data.tags.items()},
            }
        )
    return pd.DataFrame(rows, columns=["run_id", "status", "name", "parent"] if not rows else None)


def error_lines(stderr: str) -> list[str]:
    """The ``profcast: error:`` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("profcast: error:")]


from sklearn.base import BaseEstimator, RegressorMixin  # noqa: E402


class ExplodingRegressor(RegressorMixin, BaseEstimator):
    """A regressor with a bug: ``fit`` raises an error no check foresaw (conf: tests/conf/regressor/exploding.yaml)."""

    _parameter_constraints: dict = {}

    def fit(self, anchor_profiles, target_profiles):
        raise RuntimeError("a bug inside a regressor")
