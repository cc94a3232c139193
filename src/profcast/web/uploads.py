"""An uploaded profile, read as the CLI reads a file: the same kinds, the same one-line errors.

The bytes go into a fresh temporary folder under a name of our own making (the client's file name
reduced to its last part and safe characters, since the readers tell kinds apart by content and a
run file's name carries its batch size); the folder is removed when the request ends, so nothing
uploaded is kept and no path the client sends is ever opened.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePosixPath

from profcast.errors import ProfcastError
from profcast.forecast.profile_input import AnchorProfile, read_anchor_profile
from profcast.limits import MAX_REQUEST_BYTES_ENV, shown_bytes

UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]")
MAX_NAME_CHARS = 120


def safe_file_name(name: str | None, content: bytes) -> str:
    """The client's file name reduced to a plain name in one folder; pasted text (no name) is
    ``pasted.json`` when it looks like JSON, else ``pasted.csv``."""
    last_part = PurePosixPath((name or "").replace("\\", "/")).name
    cleaned = UNSAFE_CHARACTERS.sub("_", last_part).lstrip(".")[-MAX_NAME_CHARS:]
    if cleaned:
        return cleaned
    return "pasted.json" if content.lstrip()[:1] in (b"{", b"[") else "pasted.csv"


def oversized_upload_message(size: int, limit: int) -> str:
    """The answer to an upload over the limit, naming the limit and how to raise it."""
    return (
        f"the upload is {shown_bytes(size)} ({size} bytes), over the limit of {shown_bytes(limit)} "
        f"({MAX_REQUEST_BYTES_ENV}={limit}); gzip a PyTorch trace (.json.gz) or start the page with a larger "
        f"{MAX_REQUEST_BYTES_ENV}"
    )


def read_uploaded_profile(content: bytes, name: str | None, anchor: str) -> tuple[AnchorProfile, str]:
    """The profile in ``content`` (any kind profcast reads) and the name it is shown under.

    A ProfcastError names the file as the user named it, never the temporary folder.
    """
    if not content.strip():
        raise ProfcastError("the upload is empty; drop a profile file or paste one")
    shown = safe_file_name(name, content)
    with tempfile.TemporaryDirectory(prefix="profcast-upload-") as folder:
        path = Path(folder) / shown
        path.write_bytes(content)
        try:
            return read_anchor_profile(path, anchor), shown
        except ProfcastError as error:  # the same kind (a budget's refusal stays one), without the folder
            raise type(error)(str(error).replace(f"{folder}/", "")) from None


async def read_limited_body(request, limit: int, message=oversized_upload_message) -> bytes:
    """The request's body, refused (413, ``message(size, limit)``) past ``limit`` bytes before it is all read,
    whatever its header says."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(int(declared), limit, message)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise UploadTooLarge(size, limit, message)
        chunks.append(chunk)
    return b"".join(chunks)


class UploadTooLarge(ProfcastError):
    """An upload over the size limit (answered 413)."""

    def __init__(self, size: int, limit: int, message=oversized_upload_message):
        super().__init__(message(size, limit))
