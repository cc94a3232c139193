"""Register a champion after a single run: ``profcast registry [--anchor A | --run-id ID]``.

profcast registry --anchor g3s.xlarge            # best job of the experiment
profcast registry --run-id <job run id>          # that job
profcast registry --check --anchor g3s.xlarge    # is the champion a profcast model? prints its version
mlflow models serve -m models:/profcast-g3s.xlarge/<that version> --env-manager local
"""

from __future__ import annotations

import argparse
import logging

from profcast.champions.register import champion_uri, register_champions, register_job, store_errors_as_user_errors
from profcast.cli import run_cli
from profcast.config import compose_train_config
from profcast.errors import ProfcastError
from profcast.serve.registry_check import checked_version_uri
from profcast.tracking.store import configure_tracking, use_store


def main(argv=None) -> int:
    """Register the best job (or one run) as profcast-<anchor>@<alias> and print what was registered."""
    defaults = compose_train_config()
    registry = defaults.registry
    parser = argparse.ArgumentParser(
        prog="profcast registry", description="Register the best profcast job as profcast-<anchor>@champion."
    )
    parser.add_argument("--anchor", help="only jobs of this anchor (default: every anchor)")
    parser.add_argument("--run-id", help="register this job run instead of the best one")
    parser.add_argument(
        "--metric",
        default=registry.metric,
        help="job-run metric to rank by (default: registry.metric of conf/train.yaml)",
    )
    parser.add_argument(
        "--higher-is-better", action="store_true", help="rank by the highest metric instead of the lowest"
    )
    parser.add_argument(
        "--alias", default=registry.alias, help="alias to set (default: registry.alias of conf/train.yaml)"
    )
    parser.add_argument("--experiment", default=defaults.mlflow_experiment, help="MLflow experiment of the jobs")
    parser.add_argument(
        "--check",
        action="store_true",
        help="register nothing: check that the --anchor's <alias> (or --model) "
        "is a profcast job model that runs no code of its own, and print the version URI to serve",
    )
    parser.add_argument(
        "--model", help="with --check: the model URI to check (default models:/profcast-<anchor>@<alias>)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.check:
        if not (args.model or args.anchor):
            raise ProfcastError("--check needs --anchor A (its champion) or --model URI")
        use_store(defaults.tracking_uri)
        with store_errors_as_user_errors():
            pinned = checked_version_uri(args.model or champion_uri(args.anchor, args.alias))
        print(
            f"{pinned}: a profcast job model (loader profcast.serve.job_model, no code or pickle, trusted skops types); "
            f"serve it with: mlflow models serve -m {pinned} --env-manager local"
        )
        return 0

    with store_errors_as_user_errors():
        experiment_id = configure_tracking(defaults.tracking_uri, args.experiment)
        if args.run_id:
            versions = {"run": register_job(args.run_id, args.alias, args.metric)}
        else:
            lower = registry.lower_is_better and not args.higher_is_better
            versions = register_champions(experiment_id, args.metric, lower, args.alias, anchor=args.anchor)
    if not versions:
        raise ProfcastError(f"no finished job with a logged model and metric {args.metric} found; train one first")
    for version in versions.values():
        print(f"models:/{version.name}@{args.alias} -> version {version.version} (job run {version.run_id})")
    return 0


if __name__ == "__main__":
    run_cli(main)
