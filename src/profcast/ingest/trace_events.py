"""A Chrome-trace file's ``traceEvents``, one event at a time: gzip or plain, parsed as a stream within
the input size limit (``limits.max_input_bytes``) and a nesting depth, every failure one line naming the file."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import ijson

from profcast.errors import ProfcastError
from profcast.limits import CappedReader

# Kineto nests events 4 levels deep at most (traceEvents > event > args > list); far past that is not a trace.
MAX_JSON_DEPTH = 64


def load_trace_events(path: Path) -> list[dict]:
    """The ``traceEvents`` list of a Chrome-trace file, every event whole; a ProfcastError naming the file otherwise."""
    return list(iter_trace_events(Path(path)))


def iter_trace_events(path: Path, metadata: dict | None = None):
    """The events of a Chrome-trace file one by one, parsed as a stream, within the input size and nesting limits.

    ``metadata``, when given, receives the trace's top-level scalar fields (``schemaVersion``,
    ``profcast_resident_bytes``...)."""
    accepted = 'expected a PyTorch profiler trace (.json or .json.gz with "traceEvents")'

    found = []
    try:
        with open_capped(path) as stream:
            yield from _trace_event_stream(ijson.basic_parse(stream, use_float=True), found, str(path), metadata)
        if not found:
            raise ProfcastError(f'{path}: JSON without a "traceEvents" list; {accepted}')
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise ProfcastError(f"{path}: truncated or corrupt gzip; {accepted}") from None
    except ijson.JSONError as error:
        text = error.args[0] if error.args else ""
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        problem = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        if "UTF8" in problem or _starts_utf16(path):
            raise ProfcastError(f"{path}: not UTF-8 text; {accepted}") from None
        raise ProfcastError(f"{path}: not valid JSON ({problem}); {accepted}") from None
    except OSError as error:
        raise ProfcastError(f"{path}: cannot be read ({error.strerror or error})") from None


def _trace_event_stream(tokens, found: list, source: str, metadata: dict | None = None):
    """Build and yield each element of the top-level ``traceEvents`` array from ijson's ``basic_parse`` tokens.

    Hand-built rather than ``ijson.items``, whose prefix strings grow with the nesting depth (a
    ``[[[[...`` file of 100,000 levels took GBs): here a file nested past MAX_JSON_DEPTH stops in one
    line. Appends True to ``found`` once the ``traceEvents`` array opens.
    """
    depth, key, top_is_map, events_depth = 0, None, False, None
    building: list = []  # the containers of the event being built, outermost first
    for token, value in tokens:
        if token == "map_key":
            key = value
        elif token in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ProfcastError(f"{source}: JSON nested deeper than {MAX_JSON_DEPTH} levels; not a profiler trace")
            if depth == 1:
                top_is_map = token == "start_map"
            elif events_depth is None:
                if depth == 2 and top_is_map and key == "traceEvents" and token == "start_array":
                    events_depth = 2
                    found.append(True)
            else:
                container = {} if token == "start_map" else []
                if building:
                    _add(building[-1], key, container)
                building.append(container)
        elif token in ("end_map", "end_array"):
            if events_depth is not None and depth > events_depth:
                done = building.pop()
                if not building:
                    yield done
            elif depth == events_depth:
                events_depth = None  # the traceEvents array closed
            depth -= 1
        elif events_depth is not None:  # a scalar inside traceEvents
            if building:
                _add(building[-1], key, value)
            else:
                yield value
        elif depth == 1 and top_is_map and metadata is not None:  # a top-level field beside traceEvents
            metadata[key] = value


def _add(container, key, value) -> None:
    if isinstance(container, dict):
        container[key] = value
    else:
        container.append(value)


def open_capped(path: Path):
    """A binary stream of the file's text (gunzipped if gzip) that raises a ProfcastError past the input size limit."""
    return CappedReader(gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb"), str(path))


def _starts_utf16(path: Path) -> bool:
    with open_capped(path) as stream:
        return stream.read(2) in (b"\xff\xfe", b"\xfe\xff")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
