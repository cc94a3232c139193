"""The suite's ``--out`` folder: checked usable before anything runs, and held by one collector at a time.

A collector takes an exclusive ``fcntl.flock`` on ``<out>/.profcast-collect.lock`` for as long as it
runs; a second one on the same ``--out`` refuses in one line (or, with ``--wait``, waits its turn).
Two suites at once on one machine would also measure each other's load, so one lock per ``--out``
is also what the measurements want. The kernel drops the lock when the process ends, however it ends.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from profcast.errors import ProfcastError

log = logging.getLogger(__name__)

LOCK_NAME = ".profcast-collect.lock"  # hidden: the profile readers skip it
PROBE_BYTES = 64 * 1024  # a trial write this big finds a read-only folder or a full disk before any workload runs
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """An error that says the disk (or the user's quota) is full, from Python or from torch's C++ writers."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return True
    return any(words in str(error) for words in ("No space left on device", "Disk quota exceeded"))


def why_not_writable(folder: Path, error: OSError) -> str:
    """What stops a write into ``folder``, in words a user acts on."""
    if error.errno == errno.EROFS:
        return "is on a read-only file system"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "is not writable by this user"
    if error.errno in DISK_FULL_ERRNOS:
        return f"has no room left on its disk ({free_bytes(folder):,} bytes free)"
    return f"cannot be written ({error.strerror or error})"


def free_bytes(folder: Path) -> int:
    """Bytes free for this user on the disk that holds ``folder`` (0 if it cannot be asked)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def checked_out_folder(out) -> Path:
    """``out`` as a folder this process can write traces into (created if missing); one line if it cannot be."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ProfcastError(f"--out {out}: is a file, not a folder; pass a folder (it is created when missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ProfcastError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    try:  # a real write: permission bits alone do not tell (root, read-only mounts, quotas, a full disk)
        with tempfile.TemporaryFile(dir=folder, prefix=".profcast-probe.") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise ProfcastError(
            f"--out {out}: {why_not_writable(folder, error)}; free it up or pass another --out"
        ) from None
    return folder


@contextmanager
def collector_lock(folder: Path, wait: bool = False):
    """Hold ``<folder>/.profcast-collect.lock`` while the block runs; another holder means refuse (or wait)."""
    path = Path(folder) / LOCK_NAME
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise ProfcastError(f"--out {folder}: {why_not_writable(Path(folder), error)}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            if not wait:
                raise ProfcastError(
                    f"--out {folder}: another collector{holder} is running into this folder; "
                    "let it finish, pass --wait to run after it, or pass another --out"
                ) from None
            log.info("waiting for the collector%s running into %s to finish", holder, folder)
            fcntl.flock(handle, fcntl.LOCK_EX)  # Ctrl-C still ends the wait (PEP 475 runs the handler)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing the only descriptor releases the lock


def _holder(handle) -> str:
    """`` (pid N)`` of the process holding the lock, as it wrote itself into the file, or nothing."""
    handle.seek(0)
    text = handle.read().strip()
    return f" (pid {text})" if text.isdigit() else ""
