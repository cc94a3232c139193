"""Tell a fault of the store or its disk from a bug, and say it in one line.

A full disk, a damaged SQLite file, or a tracking server or database that went away are not bugs
of profcast and not the user's input either: the job's runs are ended (when the store still takes
writes) and the command prints one line naming the fault and what to do, instead of a traceback.
"""

from __future__ import annotations

import errno

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Texts by which SQLite, SQLAlchemy, psycopg2, requests and MLflow's REST client report each fault.
STORE_DISK_FULL = ("database or disk is full",)
STORE_DAMAGED = ("database disk image is malformed", "file is not a database")
SERVER_GONE = (
    "Max retries exceeded",
    "Connection refused",
    "Connection aborted",
    "RemoteDisconnected",
    "failed with error code 5",
    "API request to",
)
DATABASE_GONE = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "could not connect to server",
    "connection to server at",
    "SSL SYSCALL error: EOF detected",
)


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def store_fault(error: BaseException) -> str | None:
    """One line for a fault of the store, its disk or its server (anywhere in the exception's chain), else None."""
    chain = list(_chain(error))
    for link in chain:
        if isinstance(link, OSError) and link.errno in FULL_DISK_ERRNOS:
            where = f" writing {link.filename2 or link.filename}" if (link.filename2 or link.filename) else ""
            return (
                f"no space left on the device{where}; free space (or log elsewhere with tracking_uri=...) and run again"
            )
    texts = [str(link) for link in chain]
    if any(marker in text for text in texts for marker in STORE_DISK_FULL):
        return "the tracking store's disk is full (database or disk is full); free space and run again"
    if any(marker in text for text in texts for marker in STORE_DAMAGED):
        return "the tracking store's SQLite file is damaged (database disk image is malformed); restore it from a backup or move it aside, and run again"
    if any(marker in text for text in texts for marker in DATABASE_GONE):
        return "the tracking server lost its database connection (PostgreSQL stopped or restarted); check it (tracking_server status) and run again"
    if any(marker in text for text in texts for marker in SERVER_GONE):
        first = next((text for text in texts if any(marker in text for marker in SERVER_GONE)), "")
        return (
            f"the tracking server stopped answering ({first.strip().splitlines()[0][:200]}); start it again and rerun"
        )
    return None
