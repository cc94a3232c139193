"""A profiled trace of one transformer layer, used in place of the modelled layer compute.

A NeuSight training label file (``<model>-train-<seq>-<batch>.csv``, one row per FX-graph node of the
first transformer layer and the embeddings and head, ``latency`` = forward + backward + accumulation
in ms) measures one layer's GPU time on one GPU at one batch and sequence length. A plan then takes
the layer's compute as that measured time scaled by the model's own ratio between the plan's layer
(its tensor-parallel share, micro-batch, sequence, recomputation) and the profiled one, so the trace
sets the level and the model only the change.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.ingest.neusight import in_traced_layer, op_kind, workload_of_label_name


@dataclass(frozen=True)
class LayerProfile:
    """One layer's measured forward and backward time (ms) at a batch and sequence length, on one GPU."""

    layer_ms: float
    batch: int
    seq: int
    source: str


def read_layer_profile(path) -> LayerProfile:
    """Read a NeuSight training label CSV into the measured time of its traced layer; bad files are one line."""
    path = Path(path)
    workload = workload_of_label_name(path.name)
    if workload["mode"] != "train":
        raise ProfcastError(f"{path}: a layer profile must be a training label (<model>-train-<seq>-<batch>.csv)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ProfcastError(f"{path}: cannot be read as UTF-8 text ({error})") from None
    reader = csv.DictReader(io.StringIO(text))
    if "latency" not in (reader.fieldnames or []):
        raise ProfcastError(f"{path}: no 'latency' column; expected a NeuSight label file")
    layer_ms = 0.0
    for line, node in enumerate(reader, start=2):
        if op_kind(node) is None or not in_traced_layer(node):
            continue
        try:
            layer_ms += float(node["latency"] or 0.0)
        except ValueError:
            raise ProfcastError(f"{path}: line {line}: latency {node['latency']!r} is not a number") from None
    if layer_ms <= 0:
        raise ProfcastError(f"{path}: no timed node of the first transformer layer (h.0, layer.0, layers.0, ...)")
    return LayerProfile(layer_ms, workload["batchsize"], workload["seq_len"], str(path))
