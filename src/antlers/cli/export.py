"""``antlers export``: a run as an ONNX file, checked against PyTorch; ``load_run`` for the
commands that also take an exported file (``predict``, ``sample``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "load_run"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand, on the subparsers ``sub``."""
    export = sub.add_parser("export", help="export a run to ONNX: antlers export RUN")
    export.add_argument("run", help="run folder or .safetensors file")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (the only one)")
    export.add_argument(
        "--dynamic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="free batch size (and image size for segment); default on",
    )
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    export.add_argument("--out", help="the .onnx file (default RUN/weights/model.onnx)")
    export.set_defaults(handler=_cmd_export)


def load_run(path: str) -> Any:
    """A ``Run`` for a run folder or weights file, an ``OnnxRun`` for an exported .onnx file."""
    if Path(path).suffix == ".onnx":
        from antlers.export import OnnxRun

        return OnnxRun(path)
    from antlers.run import Run

    return Run.load(path)


def _cmd_export(args: argparse.Namespace) -> None:
    from antlers.export import DEFAULT_OPSET, export_onnx
    from antlers.export.exporter import require_onnx
    from antlers.run import Run

    require_onnx()  # before loading anything: the install hint comes first
    run = Run.load(args.run)
    exported = export_onnx(run, args.out, dynamic=args.dynamic, opset=args.opset or DEFAULT_OPSET)
    print(
        f"wrote {exported.path} ({exported.size / 2**20:.2f} MiB, opset {exported.opset}, "
        f"{exported.exporter} exporter)"
    )
    print(exported.parity)
    if not exported.parity.ok:
        print(
            f"antlers: error: {exported.path} differs from the run's PyTorch model", file=sys.stderr
        )
        raise SystemExit(1)
