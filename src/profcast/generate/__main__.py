"""Command line: ``profcast generate --out DIR [--seed N] [--instances A,B]``."""

import argparse
import time

from profcast.cli import run_cli
from profcast.generate.exports import generate_tree


def main(argv=None) -> int:
    """Write the generated study into a new folder and say how many exports it wrote."""
    parser = argparse.ArgumentParser(
        description="Generate the embedded stand-in profiling study as raw tf_stats exports."
    )
    parser.add_argument("--out", required=True, help="new or empty folder to write <exp>/<instance>/<run>.csv into")
    parser.add_argument("--seed", type=int, default=0, help="noise seed; same seed gives byte-identical files")
    parser.add_argument("--instances", help="comma-separated subset of instances (default: all ten)")
    args = parser.parse_args(argv)
    instances = args.instances.split(",") if args.instances else None
    started = time.perf_counter()
    written = generate_tree(args.out, seed=args.seed, instances=instances)
    print(f"wrote {written} tf_stats exports to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
