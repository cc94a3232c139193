"""Inputs for tests/test_trust.py: op names profilers write, synthetic traces, gzip bombs and hostile requests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.conftest import synthetic_profiles

# Op names as profilers write them, none of which MLflow accepts as (part of) a metric key as they are.
PROFILER_OP_NAMES = {
    "Device_Relu": "Device_Memcpy HtoD (Pageable -> Device)",  # NVIDIA's copy names
    "Device_Conv2D": "Device_<lambda>",  # a Python lambda run as an op
    "Device_FusedBatchNormV3": "Host_## forward ##",  # a record_function block
    "Device_Unused": "Device_a$b$/../c:d",  # mathtext and a path that normalises to another
}
# Names for the key function alone: each must become a key MLflow takes, all different.
AWKWARD_NAMES = [
    *PROFILER_OP_NAMES.values(),
    "Host_aten::add_",
    "Host_x/y",
    "Host_..",
    "Host_.",
    "Host_end.",
    "Host_sp ",
    "Device_" + "k" * 400,
    "Host_Свёртка",
    "Host_a\u0000b",
    "Device_Conv2D",
    "Host_IDLE",
]


def weird_profiles():
    """The synthetic table with some op columns renamed to PROFILER_OP_NAMES."""
    return synthetic_profiles().rename(columns=PROFILER_OP_NAMES)


def trace_with_noise(path: Path, kept_ops: int, noise_events: int, padding: int = 400) -> Path:
    """A Kineto-shaped trace: ``kept_ops`` cpu_op events in one ProfilerStep, and ``noise_events`` python_function
    events with ``padding`` bytes of args each (what real traces are mostly made of, and what the row ignores)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write('{"schemaVersion": 1, "traceEvents": [\n')
        out.write(
            json.dumps(
                {
                    "ph": "X",
                    "cat": "user_annotation",
                    "name": "ProfilerStep#1",
                    "ts": 0,
                    "dur": kept_ops * 10 + 10,
                    "pid": 1,
                    "tid": 1,
                }
            )
        )
        for number in range(kept_ops):
            out.write(
                ",\n"
                + json.dumps(
                    {
                        "ph": "X",
                        "cat": "cpu_op",
                        "name": f"aten::op{number % 50}",
                        "ts": number * 10 + 1,
                        "dur": 5,
                        "pid": 1,
                        "tid": 1,
                        "args": {"External id": number},
                    }
                )
            )
        filler = "x" * padding
        for number in range(noise_events):
            out.write(
                ",\n"
                + json.dumps(
                    {
                        "ph": "X",
                        "cat": "python_function",
                        "name": f"nn.Module: layer{number}",
                        "ts": number,
                        "dur": 1,
                        "pid": 1,
                        "tid": 2,
                        "args": {"Python id": number, "Call stack": filler},
                    }
                )
            )
        out.write("\n]}\n")
    return path


def gzip_bomb(path: Path, decompressed_bytes: int) -> Path:
    """A valid-looking gzipped trace whose text is mostly whitespace: tiny on disk, ``decompressed_bytes`` unpacked."""
    chunk = b" " * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(b'{"traceEvents": [')
        written = 0
        while written < decompressed_bytes:
            out.write(chunk[: min(len(chunk), decompressed_bytes - written)])
            written += len(chunk)
        out.write(b"]}")
    return path


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# HTTP cases the served model must answer with 400 (never 500, never a traceback):
# (content type, body bytes, words in the answer). Limits on the test server: see SERVER_LIMITS.
SERVER_LIMITS = {"PROFCAST_MAX_REQUEST_BYTES": "200000", "PROFCAST_MAX_REQUEST_ROWS": "40"}
OP = PROFILER_OP_NAMES["Device_Relu"]


def records(rows: list[dict], **params) -> bytes:
    body = {"dataframe_records": rows, **({"params": params} if params else {})}
    return json.dumps(body).encode()


HOSTILE_REQUESTS = {
    "deep_list_50000": ("application/json", deep_json(50_000).encode(), "nested too deeply"),
    "deep_inside_records": (
        "application/json",
        ('{"dataframe_records": ' + deep_json(20_000) + "}").encode(),
        "nested too deeply",
    ),
    "deep_object": ("application/json", ('{"a":' * 20_000 + "1" + "}" * 20_000).encode(), "nested too deeply"),
    "huge_number": ("application/json", b'{"dataframe_records": [{"Device_<lambda>": 1e999}]}', "Device_<lambda>"),
    "huge_integer": (
        "application/json",
        b'{"dataframe_records": [{"Device_<lambda>": ' + b"9" * 5000 + b"}]}",
        "could not be read",
    ),
    "records_is_number": ("application/json", b'{"dataframe_records": 5}', "records format must be a list"),
    "split_columns_number": ("application/json", b'{"dataframe_split": {"columns": 1, "data": 2}}', ""),
    "inputs_string": ("application/json", b'{"inputs": "x"}', ""),
    "top_level_list": ("application/json", b"[1, 2, 3]", "list"),
    "top_level_null": ("application/json", b"null", ""),
    "records_of_lists": ("application/json", b'{"dataframe_records": [[1, 2], [3]]}', ""),
    "non_utf8_bytes": ("application/json", b'{"dataframe_records": [{"\xff\xfe": 1}]}', "valid JSON"),
    "empty_body": ("application/json", b"", "valid JSON"),
    "csv_non_utf8": ("text/csv", b"Device_<lambda>\n\xff\n", "UTF-8"),
    "oversized_body": ("application/json", records([{OP: 1.0, "pad": "x" * 300_000}]), "PROFCAST_MAX_REQUEST_BYTES"),
    "too_many_rows": ("application/json", records([{OP: 1.0}] * 41), "output=totals"),
    "absurd_whatif_batch": (
        "application/json",
        records([{OP: 1.0, "batchsize": 32, "whatif_batchsize": 1_000_000_000}]),
        "trained on batch sizes 32 to 128",
    ),
    "absurd_profiled_batch": (
        "application/json",
        records([{OP: 1.0, "batchsize": 1_000_000}]),
        "trained on batch sizes",
    ),
    "tiny_whatif_batch": (
        "application/json",
        records([{OP: 1.0, "batchsize": 32, "whatif_batchsize": 1}]),
        "answers from 16 to 256",
    ),
}
