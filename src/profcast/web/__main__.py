"""Start the forecast web page: drop a profile in a browser, see every instance ranked.

    python -m profcast.web [--port 8000] [--host 127.0.0.1] [--model URI]

Without --model the page forecasts with each anchor's registered champion
(models:/profcast-<anchor>@champion) in the store every command uses (docs/tracking.md). It listens
on 127.0.0.1 only unless --host says otherwise (docs/web.md).
"""

from __future__ import annotations

import argparse
import logging
import os

from profcast.cli import run_cli

DEFAULT_HOST = "127.0.0.1"  # this machine only: the page has no login
DEFAULT_PORT = 8000


def parse_args(argv=None) -> argparse.Namespace:
    """The command's options (host, port, model)."""
    parser = argparse.ArgumentParser(
        prog="python -m profcast.web", description="A web page that ranks instances from an uploaded profile."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}, this machine only; 0.0.0.0 opens it to the network)",
    )
    parser.add_argument("--model", help="model URI (default: each anchor's models:/profcast-<anchor>@champion)")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the page is reached by (a proxy's), besides the --host address; repeatable",
    )
    return parser.parse_args(argv)


def build_app(model_uri: str | None, host: str = DEFAULT_HOST, allow_hosts: tuple[str, ...] = ()):
    """The app over the store every command uses, with ``model_uri`` or the champions, answering requests to
    ``host`` (and ``allow_hosts``) only; one-line errors first."""
    from profcast.config import compose_train_config
    from profcast.tracking.store import use_store
    from profcast.web.app import create_app
    from profcast.web.champions import Champions
    from profcast.web.guard import allowed_host_names

    defaults = compose_train_config()
    use_store(defaults.tracking_uri)
    return create_app(Champions(model_uri, defaults.registry.alias), allowed_host_names(host, tuple(allow_hosts)))


def main(argv=None) -> int:
    """Command line entry point: serve the page until Ctrl-C."""
    import mlflow
    import uvicorn

    args = parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app = build_app(args.model, args.host, tuple(args.allow_host))
    model = args.model or "each anchor's champion"
    print(f"profcast web: forecasts with {model} in {mlflow.get_tracking_uri()}", flush=True)
    # uvicorn's own lines say where it listens once it does (or why it cannot); no line per request.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    run_cli(main)
