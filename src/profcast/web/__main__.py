"""Start the forecast web page: drop a profile in a browser, see every instance ranked.

    profcast web [--port 8000] [--host 127.0.0.1] [--model URI]

Without --model the page forecasts with each anchor's registered champion
(models:/profcast-<anchor>@champion) in the store every command uses (docs/tracking.md). It listens
on 127.0.0.1 only unless --host says otherwise (docs/web.md).
"""

from __future__ import annotations

import argparse
import logging
import os

from profcast.champions.register import DEFAULT_ALIAS
from profcast.cli import run_cli
from profcast.tracking.store import use_store
from profcast.web.app import create_app
from profcast.web.champions import Champions
from profcast.web.guard import allowed_host_names

DEFAULT_HOST = "127.0.0.1"  # this machine only: the page has no login
DEFAULT_PORT = 8000


def parse_args(argv=None) -> argparse.Namespace:
    """The command's options (host, port, model)."""
    parser = argparse.ArgumentParser(
        prog="profcast web", description="A web page that ranks instances from an uploaded profile."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--model", help="model URI (default: each anchor's models:/profcast-<anchor>@<alias>)")
    parser.add_argument(
        "--alias", default=DEFAULT_ALIAS, help=f"registry alias of each anchor's model (default {DEFAULT_ALIAS})"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the page is reached by (a proxy's), besides the --host address; repeatable",
    )
    return parser.parse_args(argv)


def build_app(
    model_uri: str | None, alias: str = DEFAULT_ALIAS, host: str = DEFAULT_HOST, allow_hosts: tuple[str, ...] = ()
):
    """The app over the store every command uses, with ``model_uri`` or the champions, answering requests to
    ``host`` (and ``allow_hosts``) only; one-line errors first."""

    use_store(None)  # the store every command uses; prediction never composes the training config
    return create_app(Champions(model_uri, alias), allowed_host_names(host, tuple(allow_hosts)))


def main(argv=None) -> int:
    """Command line entry point: serve the page until Ctrl-C."""
    import mlflow  # noqa: PLC0415  MLflow takes seconds to import: only once a command needs the store
    import uvicorn  # noqa: PLC0415  the web server, only when the page starts

    args = parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app = build_app(args.model, args.alias, args.host, tuple(args.allow_host))
    model = args.model or "each anchor's champion"
    print(f"profcast web: forecasts with {model} in {mlflow.get_tracking_uri()}", flush=True)
    # uvicorn's own lines say where it listens once it does (or why it cannot); no line per request.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    run_cli(main)
