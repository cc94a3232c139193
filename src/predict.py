"""``python -m src.predict ...`` from a checkout: the same as ``profcast predict ...`` (profcast.predict)."""

from profcast.cli import run_cli
from profcast.predict import main

if __name__ == "__main__":
    run_cli(main)
