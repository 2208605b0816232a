"""The ``antlers`` command line: argparse subcommands that call the public API.

No logic lives here: each handler turns arguments into a call and prints the result. One module
per group of subcommands, each with its parsers and their handlers:

* ``lecture.py``: ``conv``, ``summary``, ``params``, ``tour`` (the lecture's worked examples);
* ``train.py``: ``train``, ``eval``, ``predict``, ``convert`` (runs and their data);
* ``explain.py``: ``explain`` (alias ``inspect``), ``slide`` (what a trained model learned);
* ``sample.py``: ``sample`` (images from a generate run).
* ``export.py``: ``export`` (a run as an ONNX file; ``load_run`` also opens such a file).
* ``serve.py``: ``serve`` (the lecture and the runs, live in a local browser page).

torch is imported only inside the handlers that need it, so ``antlers --help`` and
``antlers conv`` start fast. Errors are one line on stderr, ``antlers: error: ...``, never a
traceback (``--debug`` or ``ANTLERS_DEBUG=1`` adds it, for bug reports); the exit status says
whose turn it is:

* 2, usage: the command line asks for something wrong: bad arguments, a number out of range, a
  path that does not exist or is of the wrong kind, a file antlers refuses (ValueError and its
  kinds: CheckpointError, ImageError, DataError, ShapeError);
* 1, runtime: the request was fine but failed: an OSError (permission, disk full, read-only),
  out of memory, a RuntimeError (a diverged training), or a bug (named "internal error");
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["build_parser", "error_line", "main"]

USAGE, RUNTIME, INTERRUPTED = 2, 1, 130
MISSING_PATH = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"antlers: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; importing what it needs costs no torch."""
    from antlers.cli import explain, export, lecture, sample, serve, train

    parser = _Parser(prog="antlers", description="The convolutional-network lecture, runnable.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in (lecture, train, explain, sample, export, serve):
        group.add_parsers(sub)
    _add_debug_flag(parser, sub)
    return parser


def _add_debug_flag(parser: argparse.ArgumentParser, sub: argparse._SubParsersAction) -> None:
    """``--debug`` before or after the subcommand: print the traceback of an error too."""
    show = "on an error, print the traceback too (as ANTLERS_DEBUG=1 does)"
    parser.add_argument("--debug", action="store_true", help=show)
    for subparser in {id(p): p for p in sub.choices.values()}.values():
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=show)


def error_line(error: BaseException) -> tuple[int, str]:
    """(exit status, the message after "antlers: error: ") for an error a handler raised."""
    if isinstance(error, OSError) and error.filename is not None:
        message = f"{error.filename}: {error.strerror or error}"
    else:
        message = str(error) or type(error).__name__
    if isinstance(error, (ValueError, *MISSING_PATH)):
        return USAGE, message
    if isinstance(error, OSError):
        return RUNTIME, message
    first = message.splitlines()[0] if message.strip() else type(error).__name__
    if isinstance(error, MemoryError):
        return RUNTIME, f"out of memory ({first})"
    if isinstance(error, RuntimeError):
        return RUNTIME, first
    return RUNTIME, f"internal error: {type(error).__name__}: {first} (ANTLERS_DEBUG=1 shows where)"


def _rank() -> str:
    """ "rank R of N: " under torchrun, where every process may report its own error; else ""."""
    world_size = os.environ.get("WORLD_SIZE", "1")
    return f"rank {os.environ.get('RANK', '?')} of {world_size}: " if world_size != "1" else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``antlers`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("ANTLERS_DEBUG", "") not in ("", "0")
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("antlers: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as error:  # every error ends here as one line: see the module docstring
        if debug:
            import traceback

            traceback.print_exc()
        status, message = error_line(error)
        print(f"antlers: error: {_rank()}{message}", file=sys.stderr)
        return status
    return 0
