"""MLflow-safe metric keys for op columns, whatever characters the profiler put in the op's name.

MLflow accepts metric and param keys of alphanumerics, ``_ - . : /`` and spaces, at most 250
characters, that do not change as a file path. Profilers write names such as
``Device_Memcpy HtoD (Pageable -> Device)``, ``Device_<lambda>`` or ``Host_## forward ##``. A name
that is already safe keeps its key; any other gets its disallowed characters replaced by ``_`` and
a short hash of the original name appended, so two names never share a key and the same name
always gets the same one. The original names stay in ``column_errors.csv`` and, for the renamed
ones, ``metric_keys.csv`` (column, metric key).
"""

from __future__ import annotations

import hashlib
import re

# Only ASCII letters, digits and ``_ - .`` and spaces: ':' is refused on Windows stores and '/' makes a key a path.
SAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.\- ]")
MAX_KEY_CHARS = 250  # MLflow's limit for a metric or param key
HASH_CHARS = 8


def safe_key(name: str, prefix: str = "") -> str:
    """``prefix + name`` if MLflow accepts it as is; otherwise a sanitised key ending in ``-h<hash of name>``."""
    key = prefix + name
    if (
        not SAFE_CHARACTERS.search(name)
        and len(key) <= MAX_KEY_CHARS
        and ".." not in name
        and not name.endswith((" ", "."))
    ):
        return key
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    cleaned = SAFE_CHARACTERS.sub("_", name).replace("..", "__").strip(" .")
    room = MAX_KEY_CHARS - len(prefix) - len(digest) - 2
    return f"{prefix}{cleaned[:room]}-h{digest}"


def metric_keys(names, prefix: str) -> dict[str, str]:
    """``{name: key}`` for every name; a ValueError if two names would share a key (a hash collision)."""
    keys = {name: safe_key(str(name), prefix) for name in names}
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"two op columns map to the same MLflow key under prefix {prefix!r}")
    return keys
