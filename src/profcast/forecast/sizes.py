"""The forecast's sizes (samples per epoch, batch size, input size): read and bounded the same way by the
command line and the web page, so a size the CLI refuses is refused by the page with the same line.

The upper bounds are far past any real training job yet small enough that epoch time and cost stay
finite floats (a size with hundreds of digits would overflow them: ``OverflowError``).
"""

from __future__ import annotations

import re

from profcast.errors import ProfcastError

MAX_DATASET_SIZE = 10**12  # samples per epoch: a trillion, past any data set trained on in one epoch
MAX_BATCHSIZE = 2**20  # samples per step: 1,048,576, past the largest published global batch sizes
MAX_INPUT_SIZE = 2**20  # an image side or a sequence length: 1,048,576
LARGEST = {"dataset_size": MAX_DATASET_SIZE, "batchsize": MAX_BATCHSIZE, "input_size": MAX_INPUT_SIZE}
MEANING = {"dataset_size": "number of samples per epoch", "batchsize": "batch size", "input_size": "input size"}
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
MAX_SHOWN_CHARS = 24  # a refused value is quoted up to this many characters, then its length


def option_name(name: str) -> str:
    """``dataset_size`` -> ``--dataset-size``: how the CLI spells the size."""
    return f"--{name.replace('_', '-')}"


def shown_value(text: str) -> str:
    """A refused value as an error quotes it: cut, with its length, when it is long."""
    if len(text) <= MAX_SHOWN_CHARS:
        return repr(text)
    return f"'{text[:MAX_SHOWN_CHARS]}...' ({len(text)} characters)"


def whole_number(text: str | None, name: str) -> int | None:
    """``text`` as a size (None when empty); a value that is not a whole number in range is one ProfcastError line."""
    text = (text or "").strip()
    if not text:
        return None
    if not WHOLE_NUMBER.fullmatch(text):
        raise ProfcastError(f"{option_name(name)} {shown_value(text)} is not a whole number")
    if len(text.lstrip("+-").lstrip("0")) > len(str(LARGEST[name])):  # hundreds of digits: never int() them
        raise ProfcastError(
            f"{option_name(name)} {shown_value(text)} is larger than {LARGEST[name]:,}, the largest {MEANING[name]} accepted"
        )
    value = int(text)
    check_size(name, value)
    return value


def check_size(name: str, value: int | None) -> None:
    """Refuse a size that is not positive or past its bound, naming the option."""
    if value is None:
        return
    if value <= 0:
        what = "number of samples" if name == "dataset_size" else "integer"
        raise ProfcastError(f"{option_name(name)} {value} is not a positive {what}")
    if value > LARGEST[name]:
        raise ProfcastError(
            f"{option_name(name)} {shown_value(str(value))} is larger than {LARGEST[name]:,}, "
            f"the largest {MEANING[name]} accepted"
        )


def check_sizes(dataset_size: int, batchsize: int | None, input_size: int | None) -> None:
    """Refuse a samples-per-epoch, batch or input size that is not positive or past its bound."""
    check_size("dataset_size", dataset_size)
    check_size("batchsize", batchsize)
    check_size("input_size", input_size)


def size_option(name: str):
    """An argparse ``type`` for a size: a bad value is the one-line ProfcastError, not argparse's usage text."""

    def parse(text: str) -> int:
        value = whole_number(text, name)
        if value is None:
            raise ProfcastError(f"{option_name(name)} needs a whole number")
        return value

    parse.__name__ = name  # argparse names the type in its own messages
    return parse
