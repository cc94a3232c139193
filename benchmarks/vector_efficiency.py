"""How close each GPU's vector kernels come to its figures' bandwidth: why one GPU's softmax is hard to forecast.

    python -m benchmarks.vector_efficiency --data ../shared/data/neusight [--out FILE]

For NeuSight's paired test set (FP32 softmax, layer norm, element-wise; every GPU measured the same
shapes), each call's achieved fraction of the figures' memory bandwidth, ``bytes / latency / bandwidth``
(bytes as the atlas counts them: every input read once, the output written once), as the median per
GPU and row length (NeuSight's ``H``) over the calls that move more than 200 MB (well past L2 and the
launch floor). Beside it the figures themselves (NeuSight's device configs): bandwidth, SMs, clock, L2,
the FP32 ridge point and the DRAM bytes each SM must take per clock cycle to reach the bandwidth. No
model is fitted: this is the measurement that says which GPU behaves unlike the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.accuracy import RESULTS_DIR
from benchmarks.kernel_tables import neusight_figures, neusight_kernels
from profcast.cli import run_cli
from profcast.regressors.kernel_model import MATRIX_KINDS, OP_KINDS, with_figures

VECTOR_KINDS = tuple(kind for kind in OP_KINDS if kind not in MATRIX_KINDS)
ROW_LENGTHS = (0, 1024, 2048, 4096, 6400, 10240, 12288, 20000)  # bucket edges of NeuSight's row length H
LARGE_BYTES = 200e6  # past every GPU's L2 and many times the launch floor


def achieved_fraction(rows: pd.DataFrame) -> pd.DataFrame:
    """Median achieved fraction of the figures' bandwidth per op kind, GPU and row-length bucket (large calls)."""
    large = rows[rows["bytes"] > LARGE_BYTES]
    fraction = large["bytes"] / (large["latency_ms"] * 1e-3) / (large["bandwidth_gbs"] * 1e9)
    buckets = pd.cut(large["n"], ROW_LENGTHS)
    table = fraction.groupby([large["op_kind"], large["gpu"], buckets], observed=True).median()
    return table.unstack().round(2)


def figure_lines(figures: dict) -> list[str]:
    """Markdown: each GPU's figures and the two ratios derived from them."""
    lines = ["| GPU | bandwidth GB/s | SMs | clock MHz | L2 MB | FP32 TFLOPS | ridge FLOP/B | DRAM B per SM-cycle |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for gpu, f in sorted(figures.items()):
        ridge = f.fp32_tflops * 1e3 / f.memory_bandwidth_gbs
        per_cycle = f.memory_bandwidth_gbs * 1e9 / (f.sm_count * f.clock_mhz * 1e6)
        lines.append(
            f"| {gpu} | {f.memory_bandwidth_gbs:.0f} | {f.sm_count:.0f} | {f.clock_mhz:.0f} | {f.l2_mb:.0f} "
            f"| {f.fp32_tflops:.1f} | {ridge:.1f} | {per_cycle:.2f} |"
        )
    return lines


def main(argv=None) -> int:
    """Print (and write) each GPU's achieved bandwidth fraction on vector kernels beside its figures."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.vector_efficiency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="a NeuSight checkout (scripts/asplos/data/dataset)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "kernels-vector-efficiency.md")
    args = parser.parse_args(argv)

    def run(_argv=None) -> int:
        figures = neusight_figures(args.data)
        table = neusight_kernels(args.data)
        test = table[(table["split"] == "test") & table["op_kind"].isin(VECTOR_KINDS)].reset_index(drop=True)
        fractions = achieved_fraction(with_figures(test, figures))
        used = {gpu: figures[gpu] for gpu in sorted(set(test["gpu"]))}
        lines = [
            "# Vector kernels: achieved fraction of the figures' bandwidth (`python -m benchmarks.vector_efficiency`)"
        ]
        lines += ["", "NeuSight's paired test set, FP32, calls moving > 200 MB; median per GPU and row length H.", ""]
        for kind in VECTOR_KINDS:
            part = fractions.loc[kind]
            columns = [str(c) for c in part.columns]
            lines += [f"## {kind}", "", "| GPU | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            lines += [f"| {gpu} | " + " | ".join(f"{v:.2f}" for v in values) + " |" for gpu, values in part.iterrows()]
            lines.append("")
        lines += ["## The figures (NeuSight's device configs)", "", *figure_lines(used)]
        text = "\n".join(lines).replace("| nan", "| -") + "\n"
        print(text)
        args.out.write_text(text)
        return 0

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
