"""The ``antlers`` command line: argparse subcommands that call the public API.

No logic lives here: each handler turns arguments into a call and prints the result. torch is
imported only inside the handlers that need it, so ``antlers --help`` and ``antlers conv`` start
fast. Bad arguments exit with status 2 and one line that says what is wrong and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"antlers: error: {message}\n")


def _shape(text: str) -> tuple[int, ...]:
    """Parse '3x50x70' into (3, 50, 70)."""
    try:
        dims = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3x50x70") from None
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape CxHxW like 3x50x70")
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
    from antlers.nn.lecture import build_model, default_input_shape
    from antlers.anatomy import summary

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


def _cmd_train(args: argparse.Namespace) -> None:
    from antlers.config import TrainConfig, config_from_args
    from antlers.engine.fit import NonFiniteLossError, fit
    from antlers.tasks import default_config, get_task

    if args.resume:
        saved = TrainConfig.from_json((Path(args.resume) / "config.json").read_text())
        config = config_from_args(args, base=saved)
    else:
        config = config_from_args(args, base=default_config(args.task))
    try:
        result = fit(get_task(config.task), config, resume=args.resume)
    except NonFiniteLossError as error:
        raise ValueError(str(error)) from None
    if result.stopped_by == "signal":
        raise SystemExit(130)  # interrupted: the state is saved, --resume continues
    if result.stopped_by == "max_steps" or not result.is_main:
        return  # under torchrun, rank 0 alone reports
    if result.history:
        last = result.history[-1]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.startswith("val_"))
        print(f"done ({result.stopped_by}): epoch {last['epoch']}, {shown}")
    print(f"results in {result.run_dir}")


def _cmd_eval(args: argparse.Namespace) -> None:
    import json

    from antlers.run import evaluate_run

    metrics = evaluate_run(args.run, data=args.data, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


def _cmd_predict(args: argparse.Namespace) -> None:
    import json

    from antlers.run import predict_files

    results = predict_files(args.run, args.images, out=args.out, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for item in results:
        print(item["text"])


def _cmd_explain(args: argparse.Namespace) -> None:
    from antlers.explain.report import explain_model

    out = Path(args.out or f"runs/explain/{Path(args.run).name}")
    paths = explain_model(
        args.run, out, layer=args.layer, image=args.image, k=args.k, limit=args.limit, log=print
    )
    for path in paths:
        print(f"wrote {path}")


def _cmd_slide(args: argparse.Namespace) -> None:
    from antlers.explain.report import slide_image

    out = Path(args.out or f"runs/slide/{Path(args.image).stem}")
    paths, summary = slide_image(args.run, args.image, out)
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


def _add_explain_parsers(sub: argparse._SubParsersAction) -> None:
    insp = sub.add_parser(
        "explain",
        aliases=["inspect"],  # the command's name before 0.2
        help="what a model learned: kernels, feature maps, top-k images, Grad-CAM",
    )
    insp.add_argument("run", help="run folder, .safetensors file, or a torchvision model name")
    insp.add_argument("--layer", help="layer for the top-k images (default: the deepest map)")
    insp.add_argument("--image", help="image file for the feature maps (default: a test image)")
    insp.add_argument("--out", help="output folder (default runs/explain/NAME)")
    insp.add_argument("--k", type=int, default=8, help="top images per channel (default 8)")
    insp.add_argument("--limit", type=int, help="search only the first N test images")
    insp.set_defaults(handler=_cmd_explain)

    slide = sub.add_parser("slide", help="the moose detector: slide a classifier over an image")
    slide.add_argument("run", help="run folder or .safetensors file")
    slide.add_argument("image", help="an image file larger than the classifier's input")
    slide.add_argument("--out", help="output folder (default runs/slide/IMAGE)")
    slide.set_defaults(handler=_cmd_slide)


def _cmd_sample(args: argparse.Namespace) -> None:
    from antlers.run import Run
    from antlers.tasks.generate.figures import write_samples

    run = Run.load(args.run)
    result = run.sample_with_trajectory(
        args.n,
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        label=args.label,
        guidance=args.guidance,
        seed=args.seed,
    )
    labels = run.task.labels_for(run.classes, args.n, args.label)
    out = Path(args.out) if args.out else run.path / "samples"
    files = write_samples(result.images, result.trajectory, labels, run.classes, out)
    steps = run.meta["timesteps"] if args.sampler == "ddpm" else args.steps
    print(f"{args.n} samples ({args.sampler}, {steps} steps, guidance {args.guidance:g})")
    print(f"wrote {out / 'grid.png'}, {out / 'trajectory.png'}, {out / 'trajectory.gif'}")
    print(f"wrote {len(files) - 3} images under {out}/<class>/")
    if args.fid:
        from antlers.tasks.generate.quality import run_fid_report

        print(run_fid_report(run, args.fid, result.images, labels).text)


def _add_sample_parser(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample", help="generate images with a trained generate run")
    sample.add_argument("run", help="run folder or .safetensors file of a generate run")
    sample.add_argument("--n", type=int, default=64, help="how many images (default 64)")
    sample.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddim")
    sample.add_argument("--steps", type=int, default=50, help="DDIM steps (DDPM uses all T)")
    sample.add_argument(
        "--eta", type=float, default=1.0, help="DDIM noise (default 1; 0: deterministic DDIM)"
    )
    sample.add_argument("--class", dest="label", help="class name (default: each in turn)")
    sample.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", help="output folder (default RUN/samples)")
    sample.add_argument("--fid", metavar="CLASSIFIER_RUN", help="print FID on its features")
    sample.set_defaults(handler=_cmd_sample)


def _cmd_convert(args: argparse.Namespace) -> None:
    from antlers.data.detection import convert

    _, summary = convert(args.source, args.out)
    print(summary)


def _add_train_parsers(sub: argparse._SubParsersAction) -> None:
    from antlers.config import add_config_flags
    from antlers.tasks import TASK_NAMES

    train = sub.add_parser("train", help="train a model: antlers train classify --data ...")
    train.add_argument("task", choices=TASK_NAMES)
    train.add_argument("--resume", help="a run folder to continue (or extend with --epochs)")
    add_config_flags(train, skip=("task",))
    train.set_defaults(handler=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate a run folder or weights file on its test data")
    ev.add_argument("run", help="run folder or .safetensors file")
    ev.add_argument("--data", help="another dataset with the same classes")
    ev.add_argument("--data-dir")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(handler=_cmd_eval)

    pred = sub.add_parser("predict", help="predict on image files with a trained run")
    pred.add_argument("run", help="run folder or .safetensors file")
    pred.add_argument("images", nargs="+", help="image files")
    pred.add_argument("--out", help="folder for the output files of tasks that write them")
    pred.add_argument("--top", type=int, default=3, help="how many labels to show (default 3)")
    pred.add_argument("--json", action="store_true", help="print the predictions as JSON")
    pred.set_defaults(handler=_cmd_predict)

    conv = sub.add_parser("convert", help="convert detection data: COCO JSON <-> YOLO folder")
    conv.add_argument("source", help="a COCO .json file or a YOLO folder")
    conv.add_argument("out", help="a .json file (COCO) or a folder (YOLO); images are copied")
    conv.set_defaults(handler=_cmd_convert)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; importing what it needs costs no torch."""
    from antlers.conv.kernels import KERNELS

    parser = _Parser(prog="antlers", description="The convolutional-network lecture, runnable.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    params.add_argument("--height", type=int, default=5)
    params.add_argument("--width", type=int, default=6)
    params.add_argument("--kernel-size", type=int, default=3)
    params.set_defaults(handler=_cmd_params)

    tour = sub.add_parser("tour", help="the lecture chapter by chapter, into an HTML page")
    tour.add_argument("--out", default="runs/tour", help="output folder (default runs/tour)")
    tour.add_argument("--quick", action="store_true", help="smaller work, under 2 minutes")
    tour.add_argument(
        "--chapter",
        type=int,
        action="append",
        choices=_chapter_numbers(),
        help="run only this chapter (repeatable)",
    )
    tour.set_defaults(handler=_cmd_tour)
    _add_train_parsers(sub)
    _add_explain_parsers(sub)
    _add_sample_parser(sub)
    return parser


def _chapter_numbers() -> list[int]:
    from antlers.tour import CHAPTERS

    return sorted(CHAPTERS)


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
