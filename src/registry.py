"""``python -m src.registry ...`` from a checkout: the same as ``profcast registry ...`` (profcast.registry)."""

from profcast.cli import run_cli
from profcast.registry import main

if __name__ == "__main__":
    run_cli(main)
