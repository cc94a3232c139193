"""Everything ``profcast predict`` does: read the profile, load the job model (by default the anchor's
champion), rank every target (``forecast.ranking``) and show the ranking as text and a plot (``forecast.report``).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from profcast.errors import ProfcastError
from profcast.forecast.model_lookup import load_job_model
from profcast.forecast.profile_input import read_anchor_profile
from profcast.forecast.ranking import check_sizes, forecast
from profcast.forecast.report import check_plot_path, format_table, plot_ranking
from profcast.serve.model_info import model_lines, training_data_line
from profcast.tracking.store import use_store


def recommend(args) -> str:
    """Everything the CLI does, returning the text it prints (errors raise ProfcastError)."""

    check_sizes(args.dataset_size, args.batchsize, getattr(args, "input_size", None))
    if args.plot:
        check_plot_path(args.plot)
    if args.anchor is None and not args.model:
        raise ProfcastError("pass --anchor (its registered champion forecasts) or --model (the anchor is the model's)")
    if args.anchor is not None:
        anchor_profile = read_anchor_profile(args.profile, args.anchor)  # a bad profile fails before any store is asked
    use_store(None)  # the store every command uses: MLFLOW_TRACKING_URI, else MLflow's default (docs/tracking.md)
    model, uri = load_job_model(args.model, args.anchor, args.alias)
    anchor = args.anchor or model.metadata.metadata["anchor"]  # load_job_model checked it is there
    if args.anchor is None:
        anchor_profile = read_anchor_profile(args.profile, anchor)
    result = forecast(
        model, uri, anchor_profile, anchor, args.batchsize, getattr(args, "input_size", None), args.dataset_size
    )
    lines = [
        f"profile: {args.profile} ({result.profile_kind}, {result.n_ops} op columns) on anchor {anchor}",
        *model_lines(uri, result.metadata),
        f"epoch:   {result.epoch}",
        "",
        format_table(result.table),
    ]
    lines += [f"note: {note}" for note in result.notes]
    if args.plot:
        trained = textwrap.fill(f"trained on {training_data_line(result.metadata)}", 75)  # fits the 7-inch figure
        at = ", ".join(
            f"{key.split('_', 1)[1].replace('batchsize', 'batch')} {value:g}"
            for key, value in result.sizes.items()
            if key.startswith("whatif_")
        )
        title = (
            f"{Path(args.profile).name} from {anchor}: predicted batch latency{f' at {at}' if at else ''}\n{trained}"
        )
        plot_ranking(result.table, args.plot, title)
        lines.append(f"plot:    {args.plot}")
    return "\n".join(lines)
