"""The one exception type for problems a user can fix (bad data, bad options)."""


class ProfcastError(Exception):
    """A user-facing error: its message names the file, column or value at fault.

    Entry points catch it, print the message on one line and exit non-zero, so a
    user never sees a traceback for input they can correct.
    """
