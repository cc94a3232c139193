"""How long loading the whole kernel atlas takes, and its peak memory (bar: <= 30 s and <= 2 GB on two cores).

    python -m benchmarks.atlas_load [--data DIR ...] [--repeats 3] [--out benchmarks/results/atlas-load.md]

Each run's table is appended to ``--out`` with its date and the machine's load (newest last).

Each repeat loads the atlas (``profcast.atlas.files.load_atlas``, what ``profcast atlas`` runs) in a
fresh Python process, so the figures are the load's own: wall and CPU seconds of ``load_atlas``
inside it, the whole process's wall time (interpreter and imports too) and its peak resident memory
(``getrusage`` of the child). The machine's load average is printed beside them: on a shared machine
wall time counts the other jobs' turns on the cores too, CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
DEFAULT_DATA = [SHARED / "neusight", SHARED / "aiconfigurator"]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "atlas-load.md"
CHILD = """
import json, sys, time
started_wall, started_cpu = time.perf_counter(), time.process_time()
from profcast.atlas.files import load_atlas
atlas = load_atlas(sys.argv[1:])
print(json.dumps({"load_wall": time.perf_counter() - started_wall, "load_cpu": time.process_time() - started_cpu,
                  "rows": len(atlas.kernels), "collective_rows": len(atlas.collectives), "files": len(atlas.files),
                  "gpus": int(atlas.kernels["gpu"].nunique())}))
"""


def load_once(folders: list[Path]) -> dict:
    """One load in a fresh process: its own timings, the process's wall seconds and peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, folders)], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the load failed:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall"] = wall
    result["process_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["peak_rss_mb"] = after.ru_maxrss / 1024  # Linux reports KB; the largest child so far
    return result


TITLE = "# Loading the kernel atlas (benchmarks/atlas_load.py)"


def markdown(results: list[dict], folders: list[Path], load_average: tuple) -> str:
    """One run's results as a Markdown section (the results file keeps every run, newest last)."""
    first = results[0]
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Data: {', '.join(os.path.relpath(f, REPO_ROOT) for f in folders)}: {first['rows']:,} kernel rows over {first['gpus']} GPUs "
        f"and {first['collective_rows']:,} collective rows, from {first['files']} tables.",
        f"Machine: {os.cpu_count()} cores, load average {load_average[0]:.1f} when the run started "
        "(other jobs running: wall time includes their turns on the cores; CPU time does not).",
        "Bar (issue 30): <= 30 s and <= 2 GB on two cores.",
        "",
        "| repeat | load_atlas wall s | load_atlas CPU s | process wall s | process CPU s | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for number, r in enumerate(results, start=1):
        lines.append(
            f"| {number} | {r['load_wall']:.1f} | {r['load_cpu']:.1f} | {r['process_wall']:.1f} | "
            f"{r['process_cpu']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Load the atlas ``--repeats`` times, print the table and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", action="append", type=Path, help="atlas folder (default: NeuSight and AIConfigurator)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    folders = args.data or DEFAULT_DATA
    missing = [f for f in folders if not f.exists()]
    if missing:
        print(f"skipped: {missing[0]} is absent (the shared data lies beside the checkout)")
        return 0
    load_average = os.getloadavg()
    results = [load_once(folders) for _ in range(args.repeats)]
    text = markdown(results, folders, load_average)
    print(text)
    earlier = args.out.read_text() if args.out.is_file() else TITLE + "\n"
    args.out.write_text(earlier.rstrip("\n") + "\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
