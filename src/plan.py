"""``python -m src.plan ...`` from a checkout: the same as ``profcast plan ...`` (profcast.plan)."""

from profcast.cli import run_cli
from profcast.plan import main

if __name__ == "__main__":
    run_cli(main)
