"""``antlers explain`` (alias ``inspect``) and ``slide``: what a trained model learned."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from antlers.cli.numbers import int_in

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The subcommands that look inside a trained model, on the subparsers ``sub``."""
    insp = sub.add_parser(
        "explain",
        aliases=["inspect"],  # the command's name before 0.2
        help="what a model learned: kernels, feature maps, top-k images, Grad-CAM",
    )
    insp.add_argument("run", help="run folder, .safetensors file, or a torchvision model name")
    insp.add_argument("--layer", help="layer for the top-k images (default: the deepest map)")
    insp.add_argument("--image", help="image file for the feature maps (default: a test image)")
    insp.add_argument("--out", help="output folder (default runs/explain/NAME)")
    insp.add_argument(
        "--k", type=int_in(1, 64), default=8, help="top images per channel (default 8)"
    )
    insp.add_argument("--limit", type=int_in(1), help="search only the first N test images")
    insp.set_defaults(handler=_cmd_explain)

    slide = sub.add_parser("slide", help="the moose detector: slide a classifier over an image")
    slide.add_argument("run", help="run folder or .safetensors file")
    slide.add_argument("image", help="an image file larger than the classifier's input")
    slide.add_argument("--out", help="output folder (default runs/slide/IMAGE)")
    slide.set_defaults(handler=_cmd_slide)


def _cmd_explain(args: argparse.Namespace) -> None:
    from antlers.explain.report import explain_model

    out = Path(args.out or f"runs/explain/{Path(args.run).name}")
    subject = _subject(args.run)
    paths = explain_model(
        subject, out, layer=args.layer, image=args.image, k=args.k, limit=args.limit, log=print
    )
    for path in paths:
        print(f"wrote {path}")


def _cmd_slide(args: argparse.Namespace) -> None:
    from antlers.explain.report import slide_image

    out = Path(args.out or f"runs/slide/{Path(args.image).stem}")
    paths, summary = slide_image(_subject(args.run), args.image, out)
    (h, w), (sh, sw), (rows, cols) = summary["window"], summary["stride"], summary["positions"]
    exact = "equal to" if summary["exact"] else "the same weights as (padding differs from)"
    print(
        f"window {h}x{w}, stride {sh}x{sw}: {rows}x{cols} positions, {exact} the "
        f"classifier on each crop"
    )
    for name, best in summary["best"].items():
        box = ", ".join(f"{v:.0f}" for v in best["box"])
        print(f"  {name}: max {best['probability']:.3f} at window ({box})")
    for path in paths:
        print(f"wrote {path}")


def _subject(source: str) -> Any:
    """An ``explain.report.Subject``: a run folder or weights file, loaded here (``antlers.run``
    sits above explain), else a torchvision model name."""
    from antlers.explain.report import run_subject, torchvision_subject
    from antlers.run import Run

    return run_subject(Run.load(source)) if Path(source).exists() else torchvision_subject(source)
