"""The ``antlers`` command line: argparse subcommands that call the public API.

No logic lives here: each handler turns arguments into a call and prints the result. One module
per group of subcommands, each with its parsers and their handlers:

* ``lecture.py``: ``conv``, ``summary``, ``params``, ``tour`` (the lecture's worked examples);
* ``train.py``: ``train``, ``eval``, ``predict``, ``convert`` (runs and their data);
* ``explain.py``: ``explain`` (alias ``inspect``), ``slide`` (what a trained model learned);
* ``sample.py``: ``sample`` (images from a generate run).

torch is imported only inside the handlers that need it, so ``antlers --help`` and
``antlers conv`` start fast. Bad arguments exit with status 2 and one line that says what is
wrong and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"antlers: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; importing what it needs costs no torch."""
    from antlers.cli import explain, lecture, sample, train

    parser = _Parser(prog="antlers", description="The convolutional-network lecture, runnable.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in (lecture, train, explain, sample):
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``antlers`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except ValueError as error:
        print(f"antlers: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("antlers: interrupted", file=sys.stderr)
        return 130
    return 0
