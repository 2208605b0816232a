"""``antlers conv``, ``summary``, ``params``, ``tour``: the lecture's worked examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from antlers.cli.numbers import int_in

__all__ = ["add_parsers"]

MAX_INPUT_PIXELS = 2048 * 2048  # summary's --input: one forward pass at that size


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The subcommands of the lecture's examples, on the subparsers ``sub``."""
    from antlers.conv.kernels import KERNELS
    from antlers.tour import CHAPTERS

    conv = sub.add_parser("conv", help="one convolution: the lecture's edge detector, or a photo")
    conv.add_argument("--kernel", default="vertical_line", choices=sorted(KERNELS))
    conv.add_argument("--image", help="an image file (or 'china'/'flower', the bundled photos)")
    conv.add_argument("--out", help="PNG to write with --image (default runs/conv/NAME_KERNEL.png)")
    conv.set_defaults(handler=_cmd_conv)

    summ = sub.add_parser("summary", help="layer report: shapes, parameter formulas, RF, MACs")
    summ.add_argument("model", help="lecture_cnn, alexnet, or a torchvision model (resnet18, ...)")
    summ.add_argument("--input", type=_shape, help="input shape CxHxW, e.g. 3x50x70")
    summ.set_defaults(handler=_cmd_summary)

    params = sub.add_parser("params", help="convolution vs fully connected parameter counts")
    params.add_argument("--height", type=int_in(1), default=5)
    params.add_argument("--width", type=int_in(1), default=6)
    params.add_argument("--kernel-size", type=int_in(1), default=3)
    params.set_defaults(handler=_cmd_params)

    tour = sub.add_parser("tour", help="the lecture chapter by chapter, into an HTML page")
    tour.add_argument("--out", default="runs/tour", help="output folder (default runs/tour)")
    tour.add_argument("--quick", action="store_true", help="smaller work, under 2 minutes")
    tour.add_argument(
        "--chapter",
        type=int,
        action="append",
        choices=sorted(CHAPTERS),
        help="run only this chapter (repeatable)",
    )
    tour.set_defaults(handler=_cmd_tour)


def _shape(text: str) -> tuple[int, ...]:
    """Parse '3x50x70' into (3, 50, 70)."""
    try:
        dims = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3x50x70") from None
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape CxHxW like 3x50x70")
    if dims[0] > 64 or dims[1] * dims[2] > MAX_INPUT_PIXELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too large (allowed: C <= 64 and H x W <= {MAX_INPUT_PIXELS:,})"
        )
    return dims


def _cmd_conv(args: argparse.Namespace) -> None:
    from antlers.conv.examples import edge_detector_text

    if args.image is None:
        print(edge_detector_text(kernel=args.kernel))
        return
    from antlers.conv import conv2d, get_kernel
    from antlers.io.photos import SAMPLE_PHOTOS, read_image, sample_photo, to_grayscale
    from antlers.viz.figures import save_figure, side_by_side_figure

    path = Path(args.image)
    photo = sample_photo(args.image) if args.image in SAMPLE_PHOTOS and not path.exists() else None
    gray = to_grayscale(photo if photo is not None else read_image(path))
    kernel = get_kernel(args.kernel)
    output = conv2d(gray, kernel)
    out = Path(args.out or f"runs/conv/{path.stem}_{args.kernel}.png")
    save_figure(side_by_side_figure(gray, kernel, output, args.kernel), out)
    print(
        f"{args.kernel} on {args.image}: {gray.shape[0]}x{gray.shape[1]} -> "
        f"{output.shape[0]}x{output.shape[1]}"
    )
    print(f"wrote {out}")


def _cmd_summary(args: argparse.Namespace) -> None:
    from antlers.anatomy import summary
    from antlers.nn.lecture import build_model, default_input_shape

    input_shape = args.input or default_input_shape(args.model)
    model = build_model(args.model, input_shape=input_shape)
    print(summary(model, input_shape))


def _cmd_params(args: argparse.Namespace) -> None:
    from antlers.conv.examples import params_text

    print(params_text(args.height, args.width, args.kernel_size))


def _cmd_tour(args: argparse.Namespace) -> None:
    from antlers.tour import run_tour

    result = run_tour(args.out, quick=args.quick, chapters=args.chapter)
    print(f"tour done in {result.seconds:.0f} s:")
    for chapter in result.chapters:
        print(f"  {chapter.number}. {chapter.title}: {chapter.summary}")
    print(f"open {result.index}")
