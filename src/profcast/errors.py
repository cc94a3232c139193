"""The one exception type for problems a user can fix (bad data, bad options), and how to quote another error."""

import sys


class ProfcastError(Exception):
    """A user-facing error: its message names the file, column or value at fault.

    Entry points catch it, print the message on one line and exit non-zero, so a
    user never sees a traceback for input they can correct.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (MLflow's messages run to paragraphs)."""
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def print_error(error) -> None:
    """Print a user error in its one-line form, ``profcast: error: ...``, on stderr."""

    message = " ".join(str(getattr(error, "message", error)).split("\n")).strip()
    print(f"profcast: error: {message}", file=sys.stderr)
