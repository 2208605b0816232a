"""``antlers train``, ``eval``, ``predict``, ``convert``: runs of every task, and their data."""

from __future__ import annotations

import argparse
from typing import Any

from antlers.cli.numbers import int_in

__all__ = ["add_parsers"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The subcommands that train, evaluate and use runs, on the subparsers ``sub``."""
    from antlers.config import add_config_flags
    from antlers.tasks import TASK_NAMES

    train = sub.add_parser("train", help="train a model: antlers train classify --data ...")
    train.add_argument("task", choices=TASK_NAMES)
    train.add_argument("--resume", help="a run folder to continue (or extend with --epochs)")
    add_config_flags(train, skip=("task",))
    train.set_defaults(handler=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate a run folder or weights file on its test data")
    ev.add_argument("run", help="run folder or .safetensors file")
    ev.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="test (default), or val: the images held out of the training split in training",
    )
    ev.add_argument("--data", help="another dataset with the same classes")
    ev.add_argument("--data-dir")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(handler=_cmd_eval)

    pred = sub.add_parser("predict", help="predict on image files with a trained run")
    pred.add_argument("run", help="run folder, .safetensors file or exported .onnx file")
    pred.add_argument("images", nargs="+", help="image files")
    pred.add_argument("--out", help="folder for the output files of tasks that write them")
    pred.add_argument(
        "--top", type=int_in(1), default=3, help="how many labels to show (default 3)"
    )
    pred.add_argument("--json", action="store_true", help="print the predictions as JSON")
    pred.set_defaults(handler=_cmd_predict)

    conv = sub.add_parser("convert", help="convert detection data: COCO JSON <-> YOLO folder")
    conv.add_argument("source", help="a COCO .json file or a YOLO folder")
    conv.add_argument("out", help="a .json file (COCO) or a folder (YOLO); images are copied")
    conv.add_argument(
        "--strict", action="store_true", help="refuse a bad entry instead of skipping it"
    )
    conv.set_defaults(handler=_cmd_convert)


def _cmd_train(args: argparse.Namespace) -> None:
    from antlers.config import config_from_args, load_run_config
    from antlers.engine.fit import NonFiniteLossError, fit
    from antlers.run import check_resumed_task
    from antlers.tasks import default_config, get_task

    if args.resume:
        saved = load_run_config(args.resume)
        check_resumed_task(args.resume, saved, args.task)
        config = config_from_args(args, base=saved)
    else:
        data = {"data": args.data} if args.data else {}  # a dataset may set its own defaults
        config = config_from_args(args, base=default_config(args.task, **data))
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

    from antlers.engine import dist
    from antlers.run import Run

    run = Run.load(args.run)
    info = dist.setup(next(run.model.parameters()).device)  # torchrun: one shard per rank
    try:
        metrics = run.evaluate(
            data=args.data, data_dir=args.data_dir, split=args.split, rank=info.rank,
            world_size=info.world_size,
        )  # fmt: skip
    finally:
        dist.cleanup(info)
    if not info.is_main:
        return
    judged = _judge_captions(run)  # caption runs: the judge's scores of their samples
    if args.json:
        print(json.dumps(metrics | judged, indent=2, sort_keys=True))
    else:
        for key, value in metrics.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
        if judged:
            from antlers.tasks.generate.caption_eval import judge_text

            print("\n".join(judge_text(judged["judge"])))


def _judge_captions(run: Any) -> dict[str, Any]:
    """{"judge": scores} for a caption-conditioned generate run, else {}."""
    from antlers.tasks.generate.captioned import is_caption_run

    if run.task.name != "generate" or not is_caption_run(run.model_config):
        return {}
    from antlers.tasks.generate.caption_eval import judge_run

    return {"judge": judge_run(run.task, run.model, run.model_config)}


def _cmd_predict(args: argparse.Namespace) -> None:
    import json

    from antlers.cli.export import load_run

    results = load_run(args.run).predict_files(args.images, out=args.out, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for item in results:
        print(item["text"])


def _cmd_convert(args: argparse.Namespace) -> None:
    from antlers.data.detection import convert

    _, summary = convert(args.source, args.out, strict=args.strict)
    print(summary)
