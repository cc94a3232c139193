"""NeuSight's label files as per-call records: one row per FX node and phase, with its shapes and time.

``ingest/neusight`` sums each op kind into one column per run; the per-call model needs what makes a
call fast or slow on another device, so here each timed node of a label file stays a record:

| column | meaning |
|---|---|
| ``gpu``, ``model``, ``mode``, ``seq_len``, ``batchsize`` | run keys (``gpu`` is the instance slug of ``ingest/neusight``) |
| ``node`` | the node's row number in the file (its order in the FX graph) |
| ``kind`` | the op kind of ``ingest/neusight.op_kind`` (``Linear``, ``matmul``, ``add``, ``view`` ...) |
| ``phase`` | ``fw``, ``bw`` or ``acc`` (gradient accumulation) |
| ``input_shapes`` | tuple of the input tensors' shapes (a scalar argument is ``(1,)``) |
| ``output_shape`` | the output's shape |
| ``dtype`` | the output's dtype without ``torch.`` (``float32``; empty for Python values) |
| ``repeat`` | how often the node runs per step (``num_layer`` for the traced first layer, else 1) |
| ``time_us`` | the measured time of one call in that phase, microseconds |

A phase a node does not have (``view`` backward, inference backward) is no row. The step times of the
``.json`` beside each file come from :func:`read_neusight_steps`.
"""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pandas as pd

from profcast.errors import ProfcastError
from profcast.ingest.csv_text import checked_rows
from profcast.ingest.neusight import (
    PHASES,
    SIGNATURE_COLUMNS,
    _milliseconds,
    _read_step_times,
    in_traced_layer,
    instance_slug,
    is_neusight_header,
    op_kind,
    workload_of_label_name,
)

CALL_COLUMNS = (
    "gpu",
    "model",
    "mode",
    "seq_len",
    "batchsize",
    "node",
    "kind",
    "phase",
    "input_shapes",
    "output_shape",
    "dtype",
    "repeat",
    "time_us",
)
RUN_KEYS = ("gpu", "model", "mode", "seq_len", "batchsize")


def parse_shapes(text: str, path: Path, line: int, column: str) -> tuple:
    """A shape cell (``[[2, 512], [1]]`` or ``(2, 512)``) as nested tuples of ints; ProfcastError naming the cell."""
    text = (text or "").strip()
    if not text:
        return ()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ProfcastError(f"{path}: line {line}, column {column}: {text[:60]!r} is not a shape list") from None
    return _as_tuple(value, path, line, column)


def _as_tuple(value, path: Path, line: int, column: str):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(item, path, line, column) for item in value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfcastError(f"{path}: line {line}, column {column}: {value!r} is not a tensor dimension")
    return value


def read_neusight_calls(path, gpu: str | None = None) -> pd.DataFrame:
    """One label CSV as per-call records (columns :data:`CALL_COLUMNS`); ``gpu`` defaults to the folder's slug."""
    path = Path(path)
    workload = workload_of_label_name(path.name)
    layers = _read_step_times(path.with_suffix(".json"), path)["num_layer"]
    phases = ("fw", "bw", "acc") if workload["mode"] == "train" else ("fw",)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"{path}: cannot be read as UTF-8 text ({error})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"input_shapes", "output_shape", "dtype"} - set(reader.fieldnames or [])
    if not is_neusight_header(reader.fieldnames or []) or missing:
        raise ProfcastError(
            f"{path}: header lacks NeuSight's columns {', '.join(SIGNATURE_COLUMNS)}, input_shapes, output_shape, dtype"
        )
    gpu = gpu or instance_slug(path.parent.name)
    rows = []
    for line, node in enumerate(checked_rows(reader, path), start=2):
        kind = op_kind(node)
        if kind is None:
            continue
        inputs = parse_shapes(node["input_shapes"], path, line, "input_shapes")
        output = parse_shapes(node["output_shape"], path, line, "output_shape")
        repeat = layers if in_traced_layer(node) else 1
        for phase in phases:
            time_ms = _milliseconds(node.get(PHASES[phase]), path, line, PHASES[phase])
            if phase != "fw" and time_ms == 0:
                continue
            rows.append(
                {
                    "gpu": gpu,
                    **workload,
                    "node": line - 2,
                    "kind": kind,
                    "phase": phase,
                    "input_shapes": inputs,
                    "output_shape": output,
                    "dtype": str(node["dtype"]).strip().removeprefix("torch."),
                    "repeat": repeat,
                    "time_us": time_ms * 1000.0,
                }
            )
    if not rows:
        raise ProfcastError(f"{path}: holds no timed node")
    return pd.DataFrame(rows, columns=list(CALL_COLUMNS))


def read_neusight_steps(path, gpu: str | None = None) -> dict:
    """The run keys of one label CSV with its measured step time ``e2e_us`` and ``num_layer`` (from the .json)."""
    path = Path(path)
    workload = workload_of_label_name(path.name)
    step = _read_step_times(path.with_suffix(".json"), path)
    return {
        "gpu": gpu or instance_slug(path.parent.name),
        **workload,
        "num_layer": step["num_layer"],
        "e2e_us": step["e2e_latency"] * 1000.0,
    }


def label_files(folder) -> list[Path]:
    """Every label CSV under a NeuSight folder (the repository layout or a folder of GPU folders), sorted."""
    folder = Path(folder)
    root = folder / "scripts" / "asplos" / "label"
    root = root if root.is_dir() else folder
    if not root.is_dir():
        raise ProfcastError(f"{folder}: no such folder; expected NeuSight's scripts/asplos/label/<GPU>/*.csv")
    files = sorted(p for p in root.glob("*/*.csv") if _is_label_name(p.name))
    if not files:
        raise ProfcastError(f"{root}: holds no <GPU>/<model>-<train|inf>-<seq_len>-<batch>.csv label file")
    return files


def _is_label_name(name: str) -> bool:
    try:
        workload_of_label_name(name)
    except ProfcastError:
        return False
    return True


def read_call_folder(folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every label file of a NeuSight folder: (calls, steps), one calls row per node and phase, one steps row per run."""
    files = label_files(folder)
    calls = pd.concat([read_neusight_calls(path) for path in files], ignore_index=True)
    steps = pd.DataFrame([read_neusight_steps(path) for path in files])
    return calls, steps
