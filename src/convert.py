"""``python -m src.convert ...`` from a checkout: the same as ``profcast convert ...`` (profcast.convert)."""

from profcast.cli import run_cli
from profcast.convert import main

if __name__ == "__main__":
    run_cli(main)
