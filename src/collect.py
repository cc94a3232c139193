"""``python -m src.collect ...`` from a checkout: the same as ``profcast collect ...`` (profcast.collect)."""

from profcast.cli import run_cli
from profcast.collect.__main__ import main

if __name__ == "__main__":
    run_cli(main)
