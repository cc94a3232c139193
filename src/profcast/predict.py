"""Rank cloud instances for a training job from one profile taken on the anchor instance.

    profcast predict --profile PATH (--anchor g3s.xlarge | --model URI) [--dataset-size N]
                          [--batchsize N] [--input-size N] [--plot out.png]

PATH is a raw TensorBoard tf_stats CSV export, a CSV with rows in the training-table format
(op columns, optionally batchsize and batch_latency), or a JSON list of {op: microseconds}
objects. Without --model the anchor's registered champion (models:/profcast-<anchor>@champion)
predicts; with --model alone, the anchor is the one the model was trained for. The table is ranked by predicted batch latency, with its 80% interval, epoch time, price
and cost. --batchsize / --input-size other than the profile's forecast at that size (docs/whatif.md).

    profcast predict --profile LABEL.csv --anchor a100-80gb-pcie --target-gpu my-gpu.yaml
                          [--calls-data NEUSIGHT_FOLDER] [--anchor-gpu FILE]

forecasts a GPU nobody measured from its figures file (docs/new-gpu.md).

    profcast predict --profile TRACE.json.gz --target-gpu systems/h200_sxm.yaml --atlas-data DIR [--atlas-data DIR]

forecasts a shape-recorded PyTorch trace (bf16 or FP32) call by call with the kernel model learnt from
the atlas, from the figures alone (no --anchor: the trace's own times are not used; docs/kernels.md).
"""

from __future__ import annotations

import argparse
import logging
import os

from profcast.champions.register import DEFAULT_ALIAS
from profcast.cli import run_cli
from profcast.errors import ProfcastError
from profcast.forecast.new_gpu import forecast_new_gpu
from profcast.forecast.profile_input import PROFILE_FORMATS
from profcast.forecast.ranking import DEFAULT_DATASET_SIZE
from profcast.forecast.recommend import recommend
from profcast.forecast.sizes import size_option
from profcast.forecast.trace_on_figures import forecast_trace_on_figures
from profcast.ingest.neusight_data import neusight_cache_dir
from profcast.names import check_name


def main(argv=None) -> int:
    """Command line entry point: one-line errors, exit code 2."""
    parser = argparse.ArgumentParser(
        prog="profcast predict", description="Rank instances by predicted step time from one anchor profile."
    )
    parser.add_argument("--profile", required=True, help=PROFILE_FORMATS)
    parser.add_argument(
        "--anchor", help="instance the profile was taken on, e.g. g3s.xlarge (default with --model: the model's anchor)"
    )
    parser.add_argument("--model", help="model URI (default: models:/profcast-<anchor>@<alias>)")
    parser.add_argument(
        "--alias", default=DEFAULT_ALIAS, help=f"registry alias of the anchor's model (default {DEFAULT_ALIAS})"
    )
    parser.add_argument(
        "--dataset-size",
        type=size_option("dataset_size"),
        default=DEFAULT_DATASET_SIZE,
        help=f"samples per epoch (default {DEFAULT_DATASET_SIZE:,})",
    )
    parser.add_argument(
        "--batchsize",
        type=size_option("batchsize"),
        help="forecast at this batch size (a what-if when the profile carries another "
        "one; the profiled batch size when it carries none)",
    )
    parser.add_argument(
        "--input-size",
        type=size_option("input_size"),
        help="forecast at this input size (a what-if from the profile's dataset, e.g. 64dataset)",
    )
    parser.add_argument("--plot", help="write a bar chart of the ranking to this PNG file")
    parser.add_argument("--target-gpu", help="figures file (YAML/JSON) of a GPU nobody measured (docs/new-gpu.md)")
    parser.add_argument("--anchor-gpu", help="figures file of the anchor, when the measured data has none")
    parser.add_argument(
        "--calls-data",
        default=str(neusight_cache_dir()),
        help="NeuSight folder the per-call model is fitted on (default: the NeuSight cache)",
    )
    parser.add_argument(
        "--atlas-data",
        action="append",
        metavar="DIR",
        help="with --target-gpu and no --anchor: an atlas folder (NeuSight checkout, AIConfigurator) to fit on",
    )
    args = parser.parse_args(argv)
    if args.anchor is not None:  # with --model alone the anchor is the model's
        check_name(args.anchor, "--anchor")
    if args.target_gpu:
        clashing = [
            f"--{name.replace('_', '-')}"
            for name in ("model", "batchsize", "input_size", "plot")
            if getattr(args, name)
        ]
        if clashing:
            raise ProfcastError(f"--target-gpu forecasts with the per-call model; {clashing[0]} does not apply to it")
        if args.anchor is None and args.model is None and args.atlas_data:
            print(forecast_trace_on_figures(args.profile, args.target_gpu, args.atlas_data))
            return 0
        if args.anchor is None:
            raise ProfcastError(
                "--target-gpu needs --anchor (the GPU the profile was taken on), or --atlas-data DIR to forecast "
                "a shape-recorded trace from the kernel atlas"
            )
        print(forecast_new_gpu(args.profile, args.anchor, args.target_gpu, args.calls_data, args.anchor_gpu))
        return 0
    # The table is the output; MLflow's notes and download progress bars are noise here.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    print(recommend(args))
    return 0


if __name__ == "__main__":
    run_cli(main)
