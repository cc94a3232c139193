"""How long ``src.predict --target-gpu`` takes: the first call (fits and caches), then the cached ones.

    python -m benchmarks.target_gpu_speed [--data ../shared/data/neusight] [--atlas-data ../shared/data/aiconfigurator]
        [--out benchmarks/results/target-gpu-speed.md] [--repeat 3]

Each call is a fresh ``profcast predict`` process (interpreter and imports included, as a user
waits), with ``PROFCAST_CACHE_DIR`` pointed at a temporary folder so the first call starts cold.
Profiles: NeuSight's BERT-Large training label file measured on A100 80GB (81 nodes, 162 calls), and
the same file with its nodes repeated to 10,000 rows (a large trace's worth of calls).
Targets ``--target-gpu examples/gpus/h200-141gb.yaml``. Then the README's bf16 trace forecast from the
kernel atlas (``--target-gpu <aiconfigurator>/systems/h200_sxm.yaml --atlas-data <neusight>
--atlas-data <aiconfigurator>``, no anchor): first call (fits the kernel model, caches it), then
cached. Wall and CPU seconds (user + system of the child): the first calls once, the cached ones the
median of ``--repeat`` runs, beside ``src.predict --help`` (the interpreter and imports alone) and the
imports that reading the model needs at least; the machine's load is printed too: on two cores shared
by other jobs the wall time is mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.accuracy import RESULTS_DIR
from benchmarks.neusight_comparison import DEFAULT_DATA
from profcast.cli import run_cli

LABEL = Path("scripts/asplos/label/NVIDIA_A100_80GB_PCIe/bert_large-train-512-8.csv")
TARGET = Path("examples/gpus/h200-141gb.yaml")
LARGE_CALLS = 10_000
TRACE = Path("examples/profiles/tiny_layer_bf16.pt.trace.json.gz")
TRACE_TARGET = Path("systems/h200_sxm.yaml")


def repeated_label(source: Path, folder: Path, rows: int) -> Path:
    """The label file with its nodes repeated (names made unique) to ``rows`` rows, its .json beside it."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        nodes = list(reader)
        fields = reader.fieldnames
    path = folder / source.name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for index in range(rows):
            node = dict(nodes[index % len(nodes)])
            node["Name"] = f"{node['Name']}_{index // len(nodes)}"
            writer.writerow(node)
    shutil.copy(source.with_suffix(".json"), path.with_suffix(".json"))
    return path


def timed_predict(profile: Path, data: Path, cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``profcast predict --target-gpu`` process; its error if it fails."""
    command = [sys.executable, "-m", "src.predict", "--profile", str(profile), "--anchor", "a100-80gb-pcie"]
    command += ["--target-gpu", str(TARGET), "--calls-data", str(data)]
    return timed_command(command, {"PROFCAST_CACHE_DIR": str(cache)})


def timed_trace(atlas: list, cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one trace forecast from the kernel atlas (no anchor) on AIConfigurator's H200."""
    command = [
        sys.executable,
        "-m",
        "src.predict",
        "--profile",
        str(TRACE),
        "--target-gpu",
        str(atlas[1] / TRACE_TARGET),
    ]
    for folder in atlas:
        command += ["--atlas-data", str(folder)]
    return timed_command(command, {"PROFCAST_CACHE_DIR": str(cache)})


def repeated(timed, times: int) -> tuple[float, float]:
    """The median wall and the median CPU seconds of ``times`` calls of ``timed``."""
    runs = [timed() for _ in range(times)]
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def timed_command(command: list, env: dict | None = None) -> tuple[float, float]:
    """(wall, CPU of the child) seconds of one command; its error if it fails."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | (env or {}))
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main(argv=None) -> int:
    """Time the cold and cached forecasts and print (and write) the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.target_gpu_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the NeuSight folder (--calls-data)")
    parser.add_argument(
        "--atlas-data", type=Path, default=DEFAULT_DATA.parent / "aiconfigurator", help="AIConfigurator's folder"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "target-gpu-speed.md")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cached call (the median is printed)")
    args = parser.parse_args(argv)

    def run(_argv=None) -> int:
        with tempfile.TemporaryDirectory() as scratch:
            cache, large = Path(scratch) / "cache", Path(scratch) / "large"
            large.mkdir()
            small = args.data / LABEL
            big = repeated_label(small, large, LARGE_CALLS)
            atlas = [args.data, args.atlas_data]
            rows = [
                ("first call: fit 9 models, cache them", timed_predict(small, args.data, cache)),
                ("cached, 81-node label file", repeated(lambda: timed_predict(small, args.data, cache), args.repeat)),
                (f"cached, {LARGE_CALLS:,}-node label file",
                 repeated(lambda: timed_predict(big, args.data, cache), args.repeat)),
                ("bf16 trace on H200 from the atlas: first call, fit the kernel model, cache it",
                 timed_trace(atlas, cache)),
                ("bf16 trace on H200 from the atlas: cached", repeated(lambda: timed_trace(atlas, cache), args.repeat)),
                ("`profcast predict --help` (interpreter and imports only)",
                 repeated(lambda: timed_command([sys.executable, "-m", "src.predict", "--help"]), args.repeat)),
                ("`import pandas, sklearn.ensemble` (what reading the model needs at least)",
                 repeated(lambda: timed_command([sys.executable, "-c", "import pandas, sklearn.ensemble"]), args.repeat)),
            ]  # fmt: skip
        load = os.getloadavg()[0]
        lines = ["| call | wall s | CPU s |", "|---|---|---|"]
        lines += [f"| {name} | {wall:.1f} | {cpu:.1f} |" for name, (wall, cpu) in rows]
        lines.append(
            f"\nfirst calls once, the others the median of {args.repeat} runs; load average at the end of the run: "
            f"{load:.1f} on {os.cpu_count()} cores"
        )
        print("\n".join(lines))
        args.out.write_text("\n".join(lines) + "\n")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
