"""``python -m src.atlas ...`` from a checkout: the same as ``profcast atlas ...`` (profcast.atlas)."""

from profcast.atlas.__main__ import main
from profcast.cli import run_cli

if __name__ == "__main__":
    run_cli(main)
