"""``antlers sample``: images from a trained generate run, with its trajectory and FID."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from antlers.cli.numbers import float_at_least, int_in

__all__ = ["add_parsers"]

# The most images one call draws: they, their trajectories and the network's activations for
# the whole batch are held in memory at once. More: run again with another --seed.
MAX_SAMPLES = 1024


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``sample`` subcommand, on the subparsers ``sub``."""
    sample = sub.add_parser("sample", help="generate images with a trained generate run")
    sample.add_argument("run", help="run folder, .safetensors or exported .onnx of a generate run")
    sample.add_argument(
        "--n",
        type=int_in(1, MAX_SAMPLES),
        default=64,
        help=f"how many images (default 64, at most {MAX_SAMPLES}; more: another --seed)",
    )
    sample.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddim")
    sample.add_argument("--steps", type=int_in(1), default=50, help="DDIM steps (DDPM uses all T)")
    sample.add_argument(
        "--eta",
        type=float_at_least(0),
        default=1.0,
        help="DDIM noise (default 1; 0: deterministic DDIM)",
    )
    sample.add_argument("--class", dest="label", help="class name (default: each in turn)")
    sample.add_argument("--prompt", help="a caption run's prompt ('a red circle'; '': none)")
    sample.add_argument(
        "--guidance", type=float_at_least(0), default=3.0, help="classifier-free guidance"
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", help="output folder (default RUN/samples)")
    sample.add_argument("--fid", metavar="CLASSIFIER_RUN", help="print FID on its features")
    sample.set_defaults(handler=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> None:
    from antlers.cli.export import load_run
    from antlers.run import Run
    from antlers.tasks.generate.predict import write_samples

    run = load_run(args.run)
    condition = {"label": args.label} if args.prompt is None else {"prompt": args.prompt}
    result = run.sample_with_trajectory(
        args.n,
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        guidance=args.guidance,
        seed=args.seed,
        **condition,
    )
    out = Path(args.out) if args.out else run.path / "samples"
    if args.prompt is not None:
        _write_prompt(args, result, out)
        return
    labels = run.task.labels_for(run.classes, args.n, args.label)
    files = write_samples(result.images, result.trajectory, labels, run.classes, out)
    steps = run.model_config.timesteps if args.sampler == "ddpm" else args.steps
    print(f"{args.n} samples ({args.sampler}, {steps} steps, guidance {args.guidance:g})")
    print(f"wrote {out / 'grid.png'}, {out / 'trajectory.png'}, {out / 'trajectory.gif'}")
    print(f"wrote {len(files) - 3} images under {out}/<class>/")
    if args.fid:
        from antlers.tasks.generate.quality import run_fid_report

        # the classifier run is loaded here: antlers.run sits above the tasks
        print(run_fid_report(run, Run.load(args.fid), result.images, labels).text)


def _write_prompt(args: argparse.Namespace, result: Any, out: Path) -> None:
    from antlers.tasks.generate.predict import prompt_folder, write_prompt_samples

    write_prompt_samples(result.images, result.trajectory, args.prompt, out)
    print(f"{args.n} samples of {args.prompt!r} ({args.sampler}, guidance {args.guidance:g})")
    print(f"wrote {out / 'grid.png'}, {out / 'trajectory.png'}, {out / 'trajectory.gif'}")
    print(f"wrote {args.n} images under {out / prompt_folder(args.prompt)}/")
