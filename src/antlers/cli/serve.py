"""``antlers serve``: the lecture and the user's runs, live in a local browser page."""

from __future__ import annotations

import argparse
import contextlib
import sys

from antlers.cli.numbers import float_at_least, int_in

__all__ = ["add_parsers"]

EVERY_INTERFACE = ("0.0.0.0", "::")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand, on the subparsers ``sub``."""
    serve = sub.add_parser("serve", help="the lecture and your runs, live in the browser")
    serve.add_argument(
        "runs",
        nargs="*",
        default=["runs"],
        metavar="RUN",
        help="run folders, .safetensors files or folders of runs (default: ./runs)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only)",
    )
    serve.add_argument(
        "--port", type=int_in(0, 65535), default=8000, help="port (default 8000; 0: a free one)"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float_at_least(0.001),
        default=10.0,
        help="largest image upload in MB (default 10)",
    )
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> None:
    from antlers.serve.app import ServeConfig, create_app
    from antlers.serve.server import bind, serve, url_of

    config = ServeConfig(
        runs=tuple(args.runs), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb
    )
    app = create_app(config)
    sock = bind(config.host, config.port)
    count = sum(1 for e in app.state.runs.entries.values() if e.path is not None)
    print(f"antlers serve: {count} runs at {url_of(sock)} (Ctrl-C stops)", flush=True)
    if config.host in EVERY_INTERFACE:
        print(
            f"antlers: warning: --host {config.host} lets anyone on the network use this "
            "server and see your runs",
            file=sys.stderr,
            flush=True,
        )
    # Ctrl-C: uvicorn finishes the requests in flight, then re-raises it; the normal stop
    with contextlib.suppress(KeyboardInterrupt):
        serve(app, sock)
    print("antlers serve: stopped")
