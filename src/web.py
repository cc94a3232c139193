"""``python -m src.web ...`` from a checkout: the same as ``profcast web ...`` (profcast.web)."""

from profcast.cli import run_cli
from profcast.web.__main__ import main

if __name__ == "__main__":
    run_cli(main)
