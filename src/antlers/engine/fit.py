"""One ``fit()`` for every task: the training loop, its checkpoints, and exact resume.

Recipe per step: (1) seed the global RNG from (seed, step) so dropout is reproducible after a
resume; (2) set the learning rate from the schedule at the current progress; (3) forward under
autocast (CUDA only) and the task's loss; (4) stop on a non-finite loss, naming the step and
the last good checkpoint; (5) backward, optional gradient clipping, optimizer step, EMA update;
(6) every epoch: evaluate (the EMA model when there is one), reduce metrics across processes,
write metrics.csv, curves.png and checkpoints (rank 0). SIGINT/SIGTERM finish the current step,
save, and stop.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.checkpoint import load_state, save_state, save_weights
from antlers.engine.progress import Progress
from antlers.engine.runfolder import new_run_dir, write_curves, write_metrics_csv
from antlers.engine.schedule import learning_rate
from antlers.engine.training import (
    StopFlag,
    build_optimizer,
    make_ema,
    pick_device,
    reduce_metrics,
)
from antlers.fileio import atomic_write

__all__ = ["FitResult", "NonFiniteLossError", "fit"]

EPOCHS_WITH_TIME_BUDGET = 10_000  # --time alone: the clock, not the epoch count, ends training


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last checkpoint."""


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "epochs"  # epochs | time | early_stop | signal | max_steps
    model: nn.Module | None = None  # the trained model (EMA weights when EMA is on)


@dataclass
class _Loop:
    """The mutable position of a training run; saved in state/last.pt."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    elapsed: float = 0.0
    best: float | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def fit(
    task: Any, config: TrainConfig, resume: str | Path | None = None, log: Any = print
) -> FitResult:
    """Train ``task`` as ``config`` says; with ``resume``, continue the run folder given."""
    device = pick_device(config.device)
    info = dist.setup(device)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    try:
        return _fit(task, config, resume, device, info, log if info.is_main else _quiet)
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
    data = task.load_data(config, info.rank, info.world_size)
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every run
    model = task.build_model(data.meta).to(device)
    if device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    ema = make_ema(model, config.ema)
    loop = _Loop()
    if resume is not None:
        run_dir = Path(resume)
        loop = _restore(run_dir / "state" / "last.pt", model, optimizer, ema)
    else:
        run_dir = new_run_dir(config.out, task.name, config.name)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.json", config.to_json())
    dist.barrier(info)
    net = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)
    log(
        f"training {data.meta['model']} on {config.data} ({len(data.train.labels)} images, "
        f"{len(data.meta['classes'])} classes) -> {run_dir}"
    )
    with StopFlag() as stop:
        stopped_by = _train(
            task, config, data, net, model, optimizer, ema, loop, run_dir, device, info, stop, log
        )
    eval_model = ema.module if ema is not None else model
    if info.is_main and stopped_by not in ("signal", "max_steps"):
        task.report(run_dir, eval_model, data)
    return FitResult(run_dir, loop.history, stopped_by, eval_model)


def _train(
    task: Any,
    config: TrainConfig,
    data: Any,
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    loop: _Loop,
    run_dir: Path,
    device: torch.device,
    info: dist.DistInfo,
    stop: StopFlag,
    log: Any,
) -> str:
    epochs = config.epochs or (EPOCHS_WITH_TIME_BUDGET if config.time else 10)
    per_epoch = data.train.batches_per_epoch()
    total = epochs * per_epoch
    peak = config.lr or (0.2 if config.optimizer == "sgd" else 3e-3)
    autocast = _autocast(device, config.amp)
    scaler = torch.amp.GradScaler(
        enabled=device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    )
    smoothing = config.label_smoothing
    while loop.epoch < epochs:
        net.train()
        bar = Progress(per_epoch - loop.batch, f"epoch {loop.epoch + 1}/{epochs}", info.is_main)
        start, losses = time.perf_counter() - loop.elapsed, []
        for batch in data.train.epoch(loop.epoch, loop.batch):
            torch.manual_seed(config.seed * 1_000_003 + loop.step)
            progress = loop.step / total
            if config.time:
                progress = max(progress, (time.perf_counter() - start) / config.time)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.schedule, progress, peak, config.warmup)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                out = task.loss(net, batch, label_smoothing=smoothing)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss.item()}) at step {loop.step} (epoch "
                    f"{loop.epoch + 1}); last good checkpoint: {run_dir / 'state' / 'last.pt'} "
                    f"(try a lower --lr or --clip-grad)"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(model)
            loop.step, loop.batch = loop.step + 1, loop.batch + 1
            losses.append(loss.item())
            bar.update(loss=losses[-1], lr=optimizer.param_groups[0]["lr"])
            loop.elapsed = time.perf_counter() - start
            reason = _should_stop(config, loop, stop, info, device)
            if reason:
                bar.close()
                if reason == "time":
                    break
                _save(
                    run_dir, model, optimizer, ema, loop, data.meta, config, info, evaluated=False
                )
                log(
                    f"stopped by {reason} at step {loop.step}; state saved in {run_dir}; "
                    f"continue with: antlers train {task.name} --resume {run_dir}"
                )
                return reason
        bar.close()
        finished = _end_epoch(
            task, config, data, model, optimizer, ema, loop, losses, run_dir, device, info, log
        )
        if finished or (config.time and loop.elapsed >= config.time):
            return finished or "time"
    return "epochs"


def _autocast(device: torch.device, amp: bool) -> Any:
    """bf16 (or fp16 without bf16 support) autocast on CUDA; nothing on CPU."""
    if device.type != "cuda" or not amp:
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _should_stop(
    config: TrainConfig, loop: _Loop, stop: StopFlag, info: dist.DistInfo, device: torch.device
) -> str | None:
    """Why to stop after this step, agreed by all processes: signal, max_steps, time or None."""
    signalled, out_of_time = float(stop.raised), 0.0
    if config.time and loop.elapsed >= config.time:
        out_of_time = 1.0
    if info.enabled:
        signalled, out_of_time = dist.all_reduce_sum([signalled, out_of_time], info, device)
    if signalled:
        return "signal"
    if config.max_steps is not None and loop.step >= config.max_steps:
        return "max_steps"
    return "time" if out_of_time else None


def _end_epoch(
    task: Any,
    config: TrainConfig,
    data: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    loop: _Loop,
    losses: list[float],
    run_dir: Path,
    device: torch.device,
    info: dist.DistInfo,
    log: Any,
) -> str | None:
    """Evaluate, record, checkpoint; returns "early_stop" when patience ran out."""
    dist.broadcast_buffers(model, info)
    eval_model = ema.module if ema is not None else model
    metrics = reduce_metrics(task.evaluate(eval_model, data.val), info, device)
    train_loss = dist.all_reduce_sum([sum(losses), len(losses)], info, device)
    loop.epoch, loop.batch = loop.epoch + 1, 0
    row = {
        "epoch": loop.epoch,
        "step": loop.step,
        "seconds": round(loop.elapsed, 2),
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": train_loss[0] / max(train_loss[1], 1),
        **{f"val_{k}": v for k, v in metrics.items()},
    }
    loop.history.append(row)
    score = metrics[task.primary_metric]
    improved = loop.best is None or score > loop.best
    loop.best = score if improved else loop.best
    loop.bad_epochs = 0 if improved else loop.bad_epochs + 1
    _save(
        run_dir, model, optimizer, ema, loop, data.meta, config, info, evaluated=True, best=improved
    )
    shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train", "val")))
    log(f"epoch {loop.epoch}: {shown} ({loop.elapsed:.1f} s)")
    if config.patience is not None and loop.bad_epochs >= config.patience:
        log(f"early stop: no improvement in {config.patience} epochs")
        return "early_stop"
    return None


def _save(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    loop: _Loop,
    meta: dict[str, Any],
    config: TrainConfig,
    info: dist.DistInfo,
    evaluated: bool,
    best: bool = False,
) -> None:
    """Rank 0 writes state/last.pt, and after an evaluation the weights and the metrics."""
    if not info.is_main:
        return
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "loop": dict(vars(loop)),
    }
    save_state(state, run_dir / "state" / "last.pt")
    if not evaluated:
        return
    weights = ema.module if ema is not None else model
    full_meta = {**meta, "epoch": loop.epoch, "config": config.to_json()}
    save_weights(weights, run_dir / "weights" / "last.safetensors", full_meta)
    if best:
        save_weights(weights, run_dir / "weights" / "best.safetensors", full_meta)
    write_metrics_csv(loop.history, run_dir / "metrics.csv")
    write_curves(loop.history, run_dir / "curves.png")


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> _Loop:
    state = load_state(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    return _Loop(**state["loop"])
