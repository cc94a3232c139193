"""``python -m src.train ...`` from a checkout: the same as ``profcast train ...`` (profcast.train)."""

from profcast.train import run_command

if __name__ == "__main__":
    run_command()
