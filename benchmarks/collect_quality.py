"""Does the suite flag a catalogue measured under load? The same tiny suite run quiet and beside CPU hogs.

    python -m benchmarks.collect_quality [--workloads 4] [--threads 2] [--hogs 2] [--out benchmarks/results/collect-quality.md]

Runs the first ``--workloads`` of the smoke suite on this CPU with torch at ``--threads`` threads,
first as the machine is, then beside ``--hogs`` busy-looping processes (started for the run and
killed after it, bounded by a timeout), and prints per condition: workloads flagged noisy, the
median and largest step spread (slowest / fastest of the timed steps), the median load average and
the median step time. Writes the table to ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOG_SECONDS = 900  # a hog never outlives this, even if the benchmark is killed


def measure(workloads, threads: int) -> dict:
    """Run the workloads into a temporary folder; the manifest's quality fields summed up."""
    import torch

    from profcast.collect.manifest import describe_machine
    from profcast.collect.runner import run_suite

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        result = run_suite("smoke", workloads, out, "cpu", "cpu", describe_machine("cpu", threads))
        records = [r for r in result.manifest.workloads.values() if r.get("status") == "done"]
    spreads = [r["step_spread"] for r in records]
    return {
        "done": len(records),
        "flagged": sum(bool(r.get("noisy")) for r in records),
        "measured twice": sum(r.get("measured") == 2 for r in records),
        "median spread": statistics.median(spreads),
        "largest spread": max(spreads),
        "median load": statistics.median(r["load_average"] for r in records),
        "median step ms": 1000 * statistics.median(statistics.median(r["step_seconds"]) for r in records),
    }


def main(argv=None) -> None:
    """Quiet, then beside hogs; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/collect-quality.md")
    args = parser.parse_args(argv)
    from profcast.collect.steps import import_torch
    from profcast.collect.suites import load_suites, suite_workloads

    import_torch()
    workloads = suite_workloads("smoke", load_suites())[: args.workloads]
    rows = {"as the machine is": measure(workloads, args.threads)}
    hog = f"import time\nend = time.time() + {HOG_SECONDS}\nwhile time.time() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(args.hogs)]
    try:
        time.sleep(5)  # let the hogs show in the 1-minute load average a little
        rows[f"beside {args.hogs} CPU hogs"] = measure(workloads, args.threads)
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    columns = list(next(iter(rows.values())))
    lines = [
        f"| condition ({args.workloads} smoke workloads, {args.threads} threads) | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, row in rows.items():
        cells = [f"{value:.2f}" if isinstance(value, float) else str(value) for value in row.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    Path(args.out).write_text(
        "# Collect quality: the smoke suite's first workloads, quiet and beside CPU hogs\n\n"
        f"`python -m benchmarks.collect_quality --workloads {args.workloads} --threads {args.threads} "
        f"--hogs {args.hogs}` on {time.strftime('%Y-%m-%d', time.gmtime())}, this shared 2-core machine.\n\n"
        + table
        + "\n"
    )


if __name__ == "__main__":
    main()
