"""Command line: ``profcast collect suite --suite NAME --instance NAME --out DIR [--device D] [--budget-minutes N]``.

Runs a reference suite of training jobs on this machine (docs/collect.md) into
``<out>/<exp>/<instance>/``: one trace per workload, in the layout ``profcast convert`` and
``data=file`` read, and ``suite-manifest.json`` saying what ran. Run it again to go on where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys

from profcast.cli import run_cli
from profcast.collect.manifest import DONE, FAILED, OUT_OF_MEMORY, describe_machine
from profcast.collect.runner import check_device, run_suite
from profcast.collect.steps import import_torch
from profcast.collect.suites import load_suites, suite_workloads
from profcast.collect.workload import available_devices
from profcast.errors import ProfcastError
from profcast.names import check_name
from profcast.stops import install_stop_handlers, restore_handlers


def main(argv=None) -> int:
    """``suite``: run a reference suite; one-line errors (exit 2), Ctrl-C leaves a folder a rerun continues."""
    parser = argparse.ArgumentParser(prog="profcast collect", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    suite = commands.add_parser("suite", help="run a reference suite of training jobs on this machine")
    suite.add_argument(
        "--suite", required=True, help="suite name (conf/suites.yaml: smoke, cnn, transformer, rnn, all)"
    )
    suite.add_argument(
        "--instance", required=True, help="this machine's instance name in the catalogue, e.g. g6.xlarge"
    )
    suite.add_argument("--out", required=True, help="folder to write <exp>/<instance>/<run>.pt.trace.json.gz into")
    suite.add_argument(
        "--device", choices=("auto", "cuda", "mps", "cpu"), default="auto", help="default: the best available"
    )
    suite.add_argument("--budget-minutes", type=float, help="start no workload after this many minutes; rerun to go on")
    suite.add_argument("--threads", type=int, help="CPU threads torch uses (default: torch's own choice)")
    suite.add_argument("--exp", default="suite", help="experiment folder name (default: suite)")
    suite.add_argument("--suites-file", help="a YAML of suites of your own, the shape of conf/suites.yaml")
    suite.add_argument("--retry-failed", action="store_true", help="run workloads that failed before again")
    suite.add_argument(
        "--wait", action="store_true", help="another collector runs into --out: wait for it instead of refusing"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="profcast: %(message)s")
    logging.getLogger("torch").setLevel(logging.ERROR)
    logging.getLogger("profcast.collect.steps").setLevel(logging.WARNING)  # the runner says what each workload did
    check_name(args.instance, "--instance")  # it names a folder and every row collected here
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        raise ProfcastError(f"--budget-minutes {args.budget_minutes}: expected a positive number of minutes")
    if args.threads is not None and args.threads <= 0:
        raise ProfcastError(f"--threads {args.threads}: expected a positive number of threads")
    workloads = suite_workloads(args.suite, load_suites(args.suites_file))
    torch = import_torch()

    device = check_device(args.device, available_devices())
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = describe_machine(device, torch.get_num_threads())
    previous = install_stop_handlers()
    try:
        result = run_suite(
            args.suite,
            workloads,
            args.out,
            args.instance,
            device,
            machine,
            args.exp,
            args.budget_minutes,
            args.retry_failed,
            wait=args.wait,
        )
    except KeyboardInterrupt:
        print(f"profcast: the folder is consistent; run the same command again to go on ({args.out})", file=sys.stderr)
        raise
    finally:
        restore_handlers(previous)
    counts = result.manifest.counts()
    print(
        f"suite {args.suite} on {args.instance} ({device}): {counts.get(DONE, 0)} done, "
        f"{counts.get(OUT_OF_MEMORY, 0)} out of memory, {counts.get(FAILED, 0)} failed, "
        f"{len(workloads) - counts.get(DONE, 0) - counts.get(OUT_OF_MEMORY, 0) - counts.get(FAILED, 0)} pending "
        f"of {len(workloads)}" + ("; time budget reached, run again to go on" if result.budget_reached else "")
    )
    noisy = result.manifest.noisy()
    if noisy:
        print(
            f"warning: {len(noisy)} of {counts.get(DONE, 0)} workloads measured noisy (a busy machine or unsteady "
            "steps): flagged in the manifest, carried by convert and training; rerun them on a quiet machine"
        )
    print(f"manifest: {result.manifest.path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
