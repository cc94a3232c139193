"""NeuSight's label files (github.com/sitar-lab/NeuSight, MIT): one workload on one GPU -> one profile row.

A label file ``<GPU>/<model>-<train|inf>-<seq_len>-<batch>.csv`` has one row per node of the model's
PyTorch FX graph, with the node's measured latency in milliseconds split into ``fw_latency``,
``bw_latency`` and ``acc_latency`` (gradient accumulation); the ``.json`` beside it holds
``num_layer`` and the measured step time ``e2e_latency`` (ms). Only the first transformer layer
is traced, so its nodes count ``num_layer`` times; embeddings, final norm and head count once.

The row's keys (see docs/neusight.md):

- ``instance_name``: the GPU folder without its vendor prefix, lower case, other characters as
  ``-`` (``NVIDIA_H100_80GB_HBM3`` -> ``h100-80gb-hbm3``, ``Tesla_V100-PCIE-32GB`` -> ``v100-pcie-32gb``).
- ``dataset``: ``<seq_len>tokens``; its leading number is the input size the what-if reads.
- ``optimizer``: ``train`` or ``inf``. Pairing and the what-if join runs on equal optimizer, so a
  training step never pairs with an inference pass; in ``dataset`` the mode would look like an
  input-size move of ratio 1 to the what-if.
- ``exp_name`` ``exp1``, ``model`` and ``batchsize`` from the file name, ``batch_latency`` =
  ``e2e_latency`` / 1000 (seconds).

Op columns ``Device_<kind>_fw`` / ``_bw`` / ``_acc`` (microseconds; inference only ``_fw``), where
kind is the module class of a ``call_module`` node (last class of its ``nn_module_stack``), the
function name of a ``call_function`` node and the method name of a ``call_method`` node.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.ingest.csv_text import checked_rows

EXP_NAME = "exp1"
MODES = ("train", "inf")
PHASES = {"fw": "fw_latency", "bw": "bw_latency", "acc": "acc_latency"}
# The header columns that tell a NeuSight label CSV from any other CSV.
SIGNATURE_COLUMNS = ("op", "target", "meta", "latency", "fw_latency", "bw_latency", "acc_latency")
TIMED_OPS = ("call_module", "call_function", "call_method")
VENDOR_PREFIXES = ("NVIDIA_", "Tesla_", "AMD_Instinct_", "AMD_")
# <model>-<train|inf>-<seq_len>-<batch>.csv; the -fusion/-dp4/-tp4/-pp4 json files have no CSV and are not runs.
LABEL_NAME = re.compile(r"^(?P<model>[A-Za-z0-9_.]+)-(?P<mode>train|inf)-(?P<seq_len>\d+)-(?P<batch>\d+)$")
SIDECAR_NAME = re.compile(r"^[A-Za-z0-9_.]+-(train|inf)-\d+-\d+(-[A-Za-z0-9_]+)?\.json$")
# A module path of the traced first layer: bert.encoder.layer.0..., transformer.h.0..., model.decoder.layers.0...
TRACED_LAYER = re.compile(r"(^|\.)(layer|layers|h|block|blocks)\.0(\.|$)")
MODULE_ENTRY = re.compile(r"\('([^']*)',\s*<class '([^']+)'>\)")
FUNCTION_NAME = re.compile(r"<(?:built-in function|built-in method|function|class) '?([A-Za-z_][\w.]*)")
NAME_FORMAT = "<GPU folder>/<model>-<train|inf>-<seq_len>-<batch>.csv with <same name>.json beside it"


def is_neusight_header(names) -> bool:
    """True when a CSV header names NeuSight's per-node columns."""
    return set(SIGNATURE_COLUMNS) <= {str(name).strip() for name in names}


def is_neusight_sidecar(path) -> bool:
    """True for a NeuSight ``.json`` beside the label CSVs (step times, parallel or fused variants): not a run file."""
    path = Path(path)
    if not SIDECAR_NAME.match(path.name):
        return False
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and "e2e_latency" in content


def instance_slug(gpu_folder: str) -> str:
    """A stable readable id for a NeuSight GPU folder: vendor prefix dropped, lower case, other characters '-'."""
    name = next((gpu_folder[len(p) :] for p in VENDOR_PREFIXES if gpu_folder.startswith(p)), gpu_folder)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def workload_of_label_name(file_name: str) -> dict:
    """model, mode, seq_len and batchsize of a label file name; ProfcastError if it is not NeuSight's."""
    stem = file_name[: -len(".csv")] if file_name.lower().endswith(".csv") else file_name
    found = LABEL_NAME.match(stem)
    if not found or int(found["batch"]) <= 0 or int(found["seq_len"]) <= 0:
        raise ProfcastError(f"{file_name}: not a NeuSight label name; expected {NAME_FORMAT}")
    return {
        "model": found["model"],
        "mode": found["mode"],
        "seq_len": int(found["seq_len"]),
        "batchsize": int(found["batch"]),
    }


def op_kind(node: dict) -> str | None:
    """The node's op kind (module class, function or method name), sanitised to [A-Za-z0-9_]; None for untimed nodes."""
    op = node.get("op", "")
    if op not in TIMED_OPS:
        return None
    target = str(node.get("target", ""))
    if op == "call_module":
        classes = MODULE_ENTRY.findall(str(node.get("meta", "")))
        kind = classes[-1][1].rsplit(".", 1)[-1] if classes else target.rsplit(".", 1)[-1]
    elif op == "call_function":
        found = FUNCTION_NAME.match(target)
        kind = found.group(1).rsplit(".", 1)[-1] if found else target
    else:
        kind = target
    return re.sub(r"[^A-Za-z0-9_]", "_", kind) or "unknown"


def in_traced_layer(node: dict) -> bool:
    """True when the node belongs to the traced first layer (its target or any module path in its stack)."""
    if node.get("op") == "call_module" and TRACED_LAYER.search(str(node.get("target", ""))):
        return True
    return any(TRACED_LAYER.search(path) for path, _ in MODULE_ENTRY.findall(str(node.get("meta", ""))))


def read_neusight_label(path, instance_name: str | None = None) -> dict:
    """One label CSV (and its .json) as a profile row: run keys, batch_latency (s), Device_<kind>_<phase> (us).

    ``instance_name`` defaults to the slug of the folder the file is in.
    """
    path = Path(path)
    workload = workload_of_label_name(path.name)
    step = _read_step_times(path.with_suffix(".json"), path)
    layers = step["num_layer"]
    phases = ("fw", "bw", "acc") if workload["mode"] == "train" else ("fw",)
    totals: dict[str, float] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"{path}: cannot be read as UTF-8 text ({error})") from None
    reader = csv.DictReader(io.StringIO(text))
    if not is_neusight_header(reader.fieldnames or []):
        raise ProfcastError(f"{path}: header lacks NeuSight's columns {', '.join(SIGNATURE_COLUMNS)}")
    for line, node in enumerate(checked_rows(reader, path), start=2):
        kind = op_kind(node)
        if kind is None:
            continue
        repeat = layers if in_traced_layer(node) else 1
        for phase in phases:
            value = _milliseconds(node.get(PHASES[phase]), path, line, PHASES[phase])
            column = f"Device_{kind}_{phase}"
            totals[column] = totals.get(column, 0.0) + value * 1000.0 * repeat
    # Backward and accumulation columns of nodes that have no such phase (size, view, ...) stay out.
    totals = {column: value for column, value in totals.items() if value > 0 or column.endswith("_fw")}
    if not totals:
        raise ProfcastError(f"{path}: holds no timed node ({', '.join(TIMED_OPS)})")
    return {
        "exp_name": EXP_NAME,
        "instance_name": instance_name or instance_slug(path.parent.name),
        "dataset": f"{workload['seq_len']}tokens",
        "model": workload["model"],
        "optimizer": workload["mode"],
        "batchsize": workload["batchsize"],
        "batch_latency": step["e2e_latency"] / 1000.0,
        **dict(sorted(totals.items())),
    }


def _read_step_times(json_path: Path, csv_path: Path) -> dict:
    if not json_path.is_file():
        raise ProfcastError(
            f"{csv_path}: no {json_path.name} beside it (num_layer, e2e_latency); expected {NAME_FORMAT}"
        )
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ProfcastError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(content, dict):
        raise ProfcastError(f"{json_path}: expected a JSON object with num_layer and e2e_latency")
    layers, e2e = content.get("num_layer"), content.get("e2e_latency")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers <= 0:
        raise ProfcastError(f"{json_path}: num_layer {layers!r} is not a positive integer")
    if isinstance(e2e, bool) or not isinstance(e2e, (int, float)) or not math.isfinite(e2e) or e2e <= 0:
        raise ProfcastError(f"{json_path}: e2e_latency {e2e!r} is not a positive number of milliseconds")
    return {"num_layer": layers, "e2e_latency": float(e2e)}


def _milliseconds(text, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ProfcastError(f"{path}: line {line}, column {column}: {text!r} is not a number of milliseconds") from None
    if not math.isfinite(value) or value < 0:
        raise ProfcastError(f"{path}: line {line}, column {column}: {text!r} is not a non-negative finite time")
    return value
