"""One ``fit()`` for every task: the training loop, its checkpoints, and exact resume.

Before the first step on the CPU, the precision: bf16 autocast or float32, as ``cpu_amp`` forces
or, unset, the faster on this machine (engine/precision.py). Recipe per step: (1) seed the
global RNG from (seed, step) so dropout is reproducible after a resume; (2) set the learning rate
from the schedule at the current progress; (3) forward under autocast (CUDA with ``amp``; the
chosen precision on the CPU) and the task's loss; (4) stop on a non-finite loss, naming the
step and the last good checkpoint; (5) backward, optional gradient clipping, at ~8 sampled steps
per epoch the per-layer gradient norms (engine/monitor.py), optimizer step, EMA update; (6) every
epoch: evaluate on the validation split (the EMA model when there is one), reduce metrics across
processes, write metrics.csv, curves.png, checkpoints (best = best on validation), the first
conv's kernels and the gradient log (rank 0); (7) at the end, once: the best epoch's weights
scored on the test split (metrics.json), then the task's report. SIGINT/SIGTERM finish the
current step, save, and stop.

Faults: every file is written atomically and state/last.pt is written last (trainer.save), so a
run killed at any moment resumes from its last complete state and ends with the weights of the
uninterrupted run (on CPU); a resumed folder with no state yet trains from the start, and the
temporary files of interrupted writes are removed (docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist, elastic
from antlers.engine.checkpoint import CheckpointError, load_matching, load_state, one_line
from antlers.engine.flops import throughput, throughput_line
from antlers.engine.memory import check_step_memory
from antlers.engine.monitor import save_kernels, write_grad_norms
from antlers.engine.precision import choose_cpu_precision
from antlers.engine.runfolder import new_run_dir
from antlers.engine.trainer import Loop, NonFiniteLossError, Trainer
from antlers.engine.training import StopFlag, build_optimizer, make_ema, pick_device
from antlers.io.files import atomic_write, remove_temporaries

__all__ = ["FitResult", "NonFiniteLossError", "fit"]


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"  # epochs | time | early_stop | signal | max_steps
    model: nn.Module | None = None  # the model chosen on validation (EMA weights with EMA)
    is_main: bool = True  # rank 0 (or a single process): the one that reports
    test: dict[str, float] = field(default_factory=dict)  # metrics.json: the final test score
    images_per_s: float = 0.0  # of training, every rank's images (the summary line's)
    gflop_per_s: float | None = None  # the same, in FLOPs (None: no step was counted)


def fit(
    task: Any, config: TrainConfig, resume: str | Path | None = None, log: Any = print
) -> FitResult:
    """Train ``task`` (an ``antlers.tasks.base.Task``) as ``config`` says; with ``resume``,
    continue the run folder given. The task takes its training options from ``config`` first
    (``task.configure``); the engine itself knows no task's options.

    Resuming with the saved config replays the uninterrupted run exactly (on CPU). Extending a
    finished run with a larger ``epochs`` re-plans the schedule over the new length: training
    continues at the learning rate the new plan gives for the steps already done.
    """
    device = pick_device(config.device)
    info = dist.setup(device)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    try:
        result = _fit(task, config, resume, device, info, log if info.is_main else _quiet)
        dist.barrier(info)  # no rank tears the group down while rank 0 still writes its report
        return result
    finally:
        dist.cleanup(info)


def _quiet(*_: Any, **__: Any) -> None:
    pass


def _fit(
    task: Any,
    config: TrainConfig,
    resume: str | Path | None,
    device: torch.device,
    info: dist.DistInfo,
    log: Any,
) -> FitResult:
    task = task.configure(config)
    data = task.load_data(config, info.rank, info.world_size)
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every run
    model = task.build_model(data.model_config).to(device)
    if config.weights and resume is None:
        count, skipped = load_matching(model, config.weights)
        log(
            f"initialised {count} tensors from {config.weights}"
            + (f"; kept the new {', '.join(skipped)}" if skipped else "")
        )
    if config.channels_last:  # faster on CUDA, and on CPU (docs/experiments/cpu-layout.md)
        model = model.to(memory_format=torch.channels_last)
    check_step_memory(task, model, data.train, config.batch_size, device)  # before any folder
    if device.type == "cpu":  # bf16 or float32: forced, or the faster here (timed, remembered)
        config = choose_cpu_precision(task, config, model, data.train, info, log)
    optimizer = build_optimizer(model, config)
    ema = make_ema(model, config.ema)
    loop, run_dir = _open_run(task, config, resume, model, optimizer, ema, info, log)
    net = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)
    log(
        f"training {data.model_config.model} on {config.data} ({data.train.num_samples} "
        f"images, {len(data.model_config.classes)} classes) -> {run_dir}"
    )
    trainer = Trainer(
        task, config, data, net, model, optimizer, ema, loop, run_dir, device, info, log
    )
    with StopFlag() as stop:
        stopped_by = trainer.train(stop)
    finished = stopped_by not in ("signal", "max_steps")
    images = loop.step * trainer.batch_images * info.world_size  # every rank's
    log(throughput_line(images, loop.elapsed, trainer.flops_per_image))
    rate, gflops = throughput(images, loop.elapsed, trainer.flops_per_image)
    test = trainer.score_test() if finished and data.test is not None else {}
    if info.is_main and finished:
        write_grad_norms(loop.grad_norms, run_dir, plot=True)
        task.report(run_dir, trainer.eval_model, data)
    return FitResult(
        run_dir, loop.history, stopped_by, trainer.eval_model, info.is_main, test, rate, gflops
    )


def _open_run(
    task: Any,
    config: TrainConfig,
    resume: str | Path | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    info: dist.DistInfo,
    log: Any,
) -> tuple[Loop, Path]:
    """The loop state and run folder: restored from ``resume``, else new (created by rank 0)."""
    loop, fresh = Loop(), True
    if resume is None:  # a torchrun restart resumes the run its first start created
        resume = dist.broadcast_object(
            elastic.restarted_run(config.out, task.name) if info.is_main else None, info
        )
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise CheckpointError(f"{run_dir}: no such run folder to resume")
        if info.is_main:
            remove_temporaries(run_dir)  # left by writes a kill interrupted; never read
        state = run_dir / "state" / "last.pt"
        if state.is_file():
            loop, fresh = _restore(state, model, optimizer, ema), False
            log(f"resuming {run_dir} from step {loop.step} (epoch {loop.epoch + 1})")
        else:
            log(f"{run_dir}: no checkpoint yet (stopped before its first save): starting over")
    else:
        # rank 0 alone creates the folder (exp, exp2, ...: the first free) and tells the others
        chosen = new_run_dir(config.out, task.name, config.name) if info.is_main else None
        run_dir = dist.broadcast_object(chosen, info)
        if info.is_main:
            elastic.remember_run(config.out, task.name, run_dir)
    if info.is_main:
        atomic_write(run_dir / "config.json", config.to_json())
        if fresh:
            save_kernels(model, run_dir, epoch=0)  # the random start of the kernels' evolution
    dist.barrier(info)
    return loop, run_dir


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> Loop:
    """Load the state at ``path`` into the model, optimizer and EMA; CheckpointError naming
    ``path`` when it is not a state of this run's model (another task's, a hand-made file)."""
    state = load_state(path)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state["ema"] is not None:
            ema.load_state_dict(state["ema"])
        loop = Loop(**state["loop"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: not a training state of this run's model ({one_line(error)})"
        ) from error
    if not all(isinstance(getattr(loop, k), int) for k in ("epoch", "batch", "step")):
        raise CheckpointError(f"{path}: the loop position is not whole numbers ({loop})")
    return loop
