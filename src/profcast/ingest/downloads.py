"""Public data downloaded once into profcast's cache (PROFET, NeuSight): fetch a file, write it whole.

Every failure is one line: a download names the URL and why it failed, with what to do instead (the
caller's words); a cache folder that cannot be written names the folder and ``PROFCAST_CACHE_DIR``.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from profcast.errors import ProfcastError

log = logging.getLogger(__name__)

CACHE_ENV_VAR = "PROFCAST_CACHE_DIR"


def fetch(url: str, timeout: float, failure) -> bytes:
    """The bytes at ``url``; on any network failure a ProfcastError with ``failure(url, reason)`` as its message."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        # HTTPError's own text carries the status ("HTTP Error 404: Not Found"); other URLErrors wrap the cause.
        cause = exc.reason if type(exc) is urllib.error.URLError else exc
        raise ProfcastError(failure(url, " ".join(str(cause).split()))) from None


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents); a one-line error naming it if that is not allowed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProfcastError(
            f"cannot create {folder} ({exc.strerror}); set {CACHE_ENV_VAR} to a writable folder"
        ) from None


def write_atomically(final: Path, write) -> Path:
    """Let ``write(path)`` fill a staging file beside ``final``, then rename it: never a half-written file."""
    make_folder(final.parent)
    staging = None
    try:
        handle, name = tempfile.mkstemp(prefix=f".{final.name}-", suffix=".partial", dir=final.parent)
        os.close(handle)
        staging = Path(name)
        write(staging)
        os.chmod(staging, 0o644)  # mkstemp makes it private; the cache is meant to be shared
        os.replace(staging, final)
    except OSError as exc:
        raise ProfcastError(
            f"cannot write {final} ({exc.strerror}); set {CACHE_ENV_VAR} to a writable folder"
        ) from None
    finally:
        if staging is not None:
            staging.unlink(missing_ok=True)
    return final
