"""``python -m src.generate ...`` from a checkout: the same as ``profcast generate ...`` (profcast.generate)."""

from profcast.cli import run_cli
from profcast.generate.__main__ import main

if __name__ == "__main__":
    run_cli(main)
