"""One ``fit()`` for every task: the training loop, its checkpoints, and exact resume.

Recipe per step: (1) seed the global RNG from (seed, step) so dropout is reproducible after a
resume; (2) set the learning rate from the schedule at the current progress; (3) forward under
autocast (CUDA with ``amp``; bf16 on a CPU with native bf16 with ``cpu_amp``) and the task's
loss; (4) stop on a non-finite loss, naming the step and the last good checkpoint; (5)
backward, optional gradient clipping, at ~8 sampled steps per epoch the per-layer gradient
norms (engine/monitor.py), optimizer step, EMA update; (6) every epoch: evaluate (the EMA model
when there is one), reduce metrics across processes, write metrics.csv, curves.png,
checkpoints, the first conv's kernels and the gradient log (rank 0). SIGINT/SIGTERM finish the
current step, save, and stop.
"""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.checkpoint import load_matching, load_state, save_state, save_weights
from antlers.engine.monitor import (
    grad_norm_row,
    grad_sample_every,
    save_kernels,
    write_grad_norms,
)
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
from antlers.io.files import atomic_write

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
    is_main: bool = True  # rank 0 (or a single process): the one that reports


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
    grad_norms: list[dict[str, Any]] = field(default_factory=list)  # sampled steps' rows


def fit(
    task: Any, config: TrainConfig, resume: str | Path | None = None, log: Any = print
) -> FitResult:
    """Train ``task`` as ``config`` says; with ``resume``, continue the run folder given.

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
    if config.weights and resume is None:
        count, skipped = load_matching(model, config.weights)
        log(
            f"initialised {count} tensors from {config.weights}"
            + (f"; kept the new {', '.join(skipped)}" if skipped else "")
        )
    if config.channels_last:  # faster on CUDA, and with oneDNN on CPU too (docs/benchmarks.md)
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    ema = make_ema(model, config.ema)
    loop, run_dir = _open_run(task, config, resume, model, optimizer, ema, info)
    net = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None
        )
    if config.compile:
        net = torch.compile(net)
    log(
        f"training {data.meta['model']} on {config.data} ({data.train.num_samples} images, "
        f"{len(data.meta.get('classes', []))} classes) -> {run_dir}"
    )
    trainer = _Trainer(
        task, config, data, net, model, optimizer, ema, loop, run_dir, device, info, log
    )
    if config.cpu_amp and device.type == "cpu":
        no_bf16 = "cpu_amp: this CPU has no native bf16 (AVX512-BF16 or AMX); training in float32"
        log("bf16 autocast on the CPU" if trainer.dtype else no_bf16)
    with StopFlag() as stop:
        stopped_by = trainer.train(stop)
    if info.is_main and stopped_by not in ("signal", "max_steps"):
        write_grad_norms(loop.grad_norms, run_dir, plot=True)
        task.report(run_dir, trainer.eval_model, data)
    return FitResult(run_dir, loop.history, stopped_by, trainer.eval_model, info.is_main)


def _open_run(
    task: Any,
    config: TrainConfig,
    resume: str | Path | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: Any,
    info: dist.DistInfo,
) -> tuple[_Loop, Path]:
    """The loop state and run folder: restored from ``resume``, else new (named by rank 0)."""
    loop = _Loop()
    if resume is not None:
        run_dir = Path(resume)
        loop = _restore(run_dir / "state" / "last.pt", model, optimizer, ema)
    else:
        # rank 0 alone picks the free name (exp, exp2, ...) and tells the others
        chosen = new_run_dir(config.out, task.name, config.name) if info.is_main else None
        run_dir = dist.broadcast_object(chosen, info)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.json", config.to_json())
        if resume is None:
            save_kernels(model, run_dir, epoch=0)  # the random start of the kernels' evolution
    dist.barrier(info)
    return loop, run_dir


@dataclass
class _Trainer:
    """Everything one training run works with; its methods are the recipe's steps."""

    task: Any
    config: TrainConfig
    data: Any
    net: nn.Module  # what the forward pass calls: the model, maybe wrapped by DDP / compile
    model: nn.Module  # the bare model: its parameters are the ones saved
    optimizer: torch.optim.Optimizer
    ema: Any
    loop: _Loop
    run_dir: Path
    device: torch.device
    info: dist.DistInfo
    log: Any
    grad_every: int = 1  # record the per-layer gradient norms every this many steps
    dtype: torch.dtype | None = field(init=False)  # of the forward pass under autocast (None: off)
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        self.dtype = autocast_dtype(self.device, self.config)
        self.scaler = torch.amp.GradScaler(enabled=self.dtype == torch.float16)  # fp16 only

    @property
    def eval_model(self) -> nn.Module:
        """The model that is evaluated and saved: the EMA average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def train(self, stop: StopFlag) -> str:
        """Run epochs until done; returns why it stopped (see FitResult.stopped_by)."""
        config, loop = self.config, self.loop
        epochs = config.epochs or (EPOCHS_WITH_TIME_BUDGET if config.time else 10)
        per_epoch = self.data.train.batches_per_epoch()
        self.grad_every = grad_sample_every(per_epoch)
        while loop.epoch < epochs:
            self.net.train()
            bar = Progress(
                per_epoch - loop.batch, f"epoch {loop.epoch + 1}/{epochs}", self.info.is_main
            )
            start, losses, timed_out = time.perf_counter() - loop.elapsed, [], False
            for batch in self.data.train.epoch(loop.epoch, loop.batch):
                progress = loop.step / (epochs * per_epoch)
                if config.time:  # the clock as all ranks agreed after the last step
                    progress = max(progress, loop.elapsed / config.time)
                losses.append(self.step(batch, progress))
                bar.update(loss=losses[-1], lr=self.optimizer.param_groups[0]["lr"])
                loop.elapsed = time.perf_counter() - start
                reason = _should_stop(config, loop, stop, self.info, self.device)
                if reason == "time":
                    timed_out = True
                    break
                if reason:
                    bar.close()
                    return self.interrupt(reason)
            bar.close()
            finished = self.end_epoch(losses)
            if finished or timed_out:  # agreed by all ranks: their clocks differ
                return finished or "time"
        return "epochs"

    def step(self, batch: dict[str, torch.Tensor], progress: float) -> float:
        """One optimizer step (recipe steps 1-5); returns the loss."""
        config, loop = self.config, self.loop
        torch.manual_seed(config.seed * 1_000_003 + loop.step)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config.schedule, progress, config.peak_lr, config.warmup)
        batch = {k: self._to_device(v) for k, v in batch.items()}
        with _autocast(self.device, self.dtype):
            loss = self.task.loss(self.net, batch, label_smoothing=config.label_smoothing)["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {loop.step} (epoch {loop.epoch + 1}); "
                f"last good checkpoint: {self.run_dir / 'state' / 'last.pt'} "
                f"(try a lower --lr or --clip-grad)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if config.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_grad)
        if loop.step % self.grad_every == 0 and self.info.is_main:
            self.record_grad_norms()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        loop.step, loop.batch = loop.step + 1, loop.batch + 1
        return loss.item()

    def record_grad_norms(self) -> None:
        """Append the per-layer gradient norms of this step (true gradients, loss scale undone)."""
        scaled = self.scaler.is_enabled() and not self.config.clip_grad  # clipping unscaled them
        scale = self.scaler.get_scale() if scaled else 1.0
        loop = self.loop
        loop.grad_norms.append(grad_norm_row(self.model, loop.step, loop.epoch + 1, scale))

    def _to_device(self, t: Any) -> Any:
        if isinstance(t, list | tuple):  # per-image tensors of different lengths (boxes)
            return [self._to_device(x) for x in t]
        t = t.to(self.device, non_blocking=True)
        if self.config.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def interrupt(self, reason: str) -> str:
        """Save the state mid-epoch and say how to continue."""
        self.save(evaluated=False)
        self.log(
            f"stopped by {reason} at step {self.loop.step}; state saved in {self.run_dir}; "
            f"continue with: antlers train {self.task.name} --resume {self.run_dir}"
        )
        return reason

    def end_epoch(self, losses: list[float]) -> str | None:
        """Evaluate, record, checkpoint; returns "early_stop" when patience ran out."""
        config, loop, info = self.config, self.loop, self.info
        dist.broadcast_buffers(self.model, info)
        if self.ema is not None:  # its buffers average each rank's own BatchNorm statistics
            dist.broadcast_buffers(self.ema, info)
        metrics = reduce_metrics(
            self.task.evaluate(self.eval_model, self.data.val), info, self.device
        )
        train_loss = dist.all_reduce_sum([sum(losses), len(losses)], info, self.device)
        loop.epoch, loop.batch = loop.epoch + 1, 0
        row = {
            "epoch": loop.epoch,
            "step": loop.step,
            "seconds": round(loop.elapsed, 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss[0] / max(train_loss[1], 1),
            **{f"val_{k}": v for k, v in metrics.items()},
        }
        loop.history.append(row)
        score = metrics[self.task.primary_metric]
        if not getattr(self.task, "maximize", True):
            score = -score  # e.g. a loss: lower is better
        improved = loop.best is None or score > loop.best
        loop.best = score if improved else loop.best
        loop.bad_epochs = 0 if improved else loop.bad_epochs + 1
        self.save(evaluated=True, best=improved)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train", "val")))
        self.log(f"epoch {loop.epoch}: {shown} ({loop.elapsed:.1f} s)")
        if config.patience is not None and loop.bad_epochs >= config.patience:
            self.log(f"early stop: no improvement in {config.patience} epochs")
            return "early_stop"
        return None

    def save(self, evaluated: bool, best: bool = False) -> None:
        """Rank 0 writes state/last.pt, and after an evaluation the weights and the metrics."""
        if not self.info.is_main:
            return
        run_dir, loop = self.run_dir, self.loop
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "loop": dict(vars(loop)),
        }
        save_state(state, run_dir / "state" / "last.pt")
        if not evaluated:
            return
        meta = {**self.data.meta, "epoch": loop.epoch, "config": self.config.to_json()}
        save_weights(self.eval_model, run_dir / "weights" / "last.safetensors", meta)
        save_kernels(self.eval_model, run_dir, loop.epoch)
        write_grad_norms(loop.grad_norms, run_dir)
        if best:
            save_weights(self.eval_model, run_dir / "weights" / "best.safetensors", meta)
        write_metrics_csv(loop.history, run_dir / "metrics.csv")
        write_curves(loop.history, run_dir / "curves.png")


def autocast_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    """The dtype the forward pass runs in under autocast, None for none: on CUDA with
    ``config.amp`` bf16 (fp16 where bf16 is unsupported); on the CPU with ``config.cpu_amp`` bf16
    where the CPU has native bf16."""
    if device.type == "cuda" and config.amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_amp and cpu_has_bf16():
        return torch.bfloat16
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX). Without those instructions
    oneDNN emulates bf16; even with them some models train slower in bf16 (LR-ASPP,
    docs/benchmarks.md, segment), which is why ``cpu_amp`` is opt-in per task."""
    cpu = torch.cpu
    return any(
        getattr(cpu, name, lambda: False)()
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def _should_stop(
    config: TrainConfig, loop: _Loop, stop: StopFlag, info: dist.DistInfo, device: torch.device
) -> str | None:
    """Why to stop after this step, agreed by all processes: signal, max_steps, time or None.

    Under torchrun ``loop.elapsed`` becomes the processes' mean: each one's clock runs from its
    own start of the epoch (rank 0 starts later, having written the checkpoints), and the
    learning rate planned from the clock must be the same everywhere or the weights diverge.
    """
    signalled = float(stop.raised)
    if info.enabled:
        signalled, total = dist.all_reduce_sum([signalled, loop.elapsed], info, device)
        loop.elapsed = total / info.world_size
    if signalled:
        return "signal"
    if config.max_steps is not None and loop.step >= config.max_steps:
        return "max_steps"
    return "time" if config.time and loop.elapsed >= config.time else None


def _restore(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> _Loop:
    state = load_state(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    return _Loop(**state["loop"])
