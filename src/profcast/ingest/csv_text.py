"""CSV text the way profile files hold it: a line too long for the reader and a header naming a column twice, each one line.

Python's csv module refuses a field over ``csv.field_size_limit()`` characters (128 KiB) with
``_csv.Error``; no real profile has such a field, so it is refused as not a profile. pandas renames a
repeated column (``Device_AddN`` twice becomes ``Device_AddN`` and ``Device_AddN.1``), which used to
train on a phantom op, so a header is checked as written, before pandas renames anything.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from pathlib import Path

from profcast.errors import ProfcastError

FIELD_LIMIT = csv.field_size_limit()  # 131,072 characters unless something changed it
HEADER_BYTES = 4 << 20  # a header of thousands of op names fits many times over


def field_too_long(path, line: int | None, error: csv.Error) -> ProfcastError:
    """The one-line refusal of a file whose line ``line`` the csv reader gave up on."""
    where = f"line {line}" if line else "a line"
    return ProfcastError(
        f"{path}: {where} holds a field longer than the CSV reader takes ({FIELD_LIMIT:,} characters); "
        "not a profile export"
    )


def first_csv_row(text: str, path) -> list[str]:
    """The fields of the first line of ``text``; one line naming the file if it is too long to read."""
    try:
        return next(csv.reader(io.StringIO(text.splitlines()[0] if text else "")), [])
    except csv.Error as error:
        raise field_too_long(path, 1, error) from None


def checked_rows(reader, path):
    """The rows of a ``csv.reader``/``DictReader``, a too-long line turned into one line naming it."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise field_too_long(path, reader.line_num, error) from None
        yield row


def repeated_names(header) -> list[str]:
    """Column names the header holds more than once, in the order they first appear."""
    counts = Counter(str(name).strip() for name in header)
    return [name for name in dict.fromkeys(str(n).strip() for n in header) if counts[name] > 1]


def check_unique_header(header, path) -> None:
    """Refuse a header that names a column twice (pandas would keep both, renaming the second ``<name>.1``)."""
    repeated = repeated_names(header)
    if repeated:
        raise ProfcastError(
            f"{path}: the header names column {repeated[0]!r} twice"
            + (f" (and {len(repeated) - 1} more repeated)" if len(repeated) > 1 else "")
            + "; keep one column per op (sum the two if both are real)"
        )


def check_csv_header(path) -> None:
    """Read a CSV file's header as written (plain or gzipped) and refuse a column named twice."""
    path = Path(path)
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as stream:
        line = stream.readline(HEADER_BYTES + 1)  # bounded: a gzip bomb of one endless line stops here
    if len(line) > HEADER_BYTES:
        raise ProfcastError(f"{path}: line 1 (the header) is longer than {HEADER_BYTES:,} bytes; not a profile table")
    check_unique_header(first_csv_row(line.decode("utf-8-sig", errors="replace"), path), path)
