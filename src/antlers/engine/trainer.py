"""The steps of one training run: the recipe of ``fit`` (see its module docstring), one method
per step, and the loop position that a checkpoint saves."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.checkpoint import CheckpointError, load_weights, save_state, save_weights
from antlers.engine.flops import counted
from antlers.engine.monitor import grad_norm_row, grad_sample_every, save_kernels, write_grad_norms
from antlers.engine.precision import autocast, autocast_dtype
from antlers.engine.runfolder import write_curves, write_metrics_csv
from antlers.engine.schedule import learning_rate
from antlers.engine.training import StopFlag, should_stop, to_device
from antlers.io.files import atomic_write
from antlers.io.progress import Progress

__all__ = ["EPOCHS_WITH_TIME_BUDGET", "Loop", "NonFiniteLossError", "Trainer"]

EPOCHS_WITH_TIME_BUDGET = 10_000  # --time alone: the clock, not the epoch count, ends training


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last checkpoint."""


@dataclass
class Loop:
    """The mutable position of a training run; saved in state/last.pt."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    elapsed: float = 0.0
    best: float | None = None
    best_epoch: int = 0  # the epoch whose weights the validation split chose (1-based; 0: none)
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    grad_norms: list[dict[str, Any]] = field(default_factory=list)  # sampled steps' rows


@dataclass
class Trainer:
    """Everything one training run works with; its methods are the recipe's steps."""

    task: Any  # an antlers.tasks.base.Task (the engine imports no task code)
    config: TrainConfig
    data: Any  # the task's antlers.tasks.base.TaskData
    net: nn.Module  # what the forward pass calls: the model, maybe wrapped by DDP / compile
    model: nn.Module  # the bare model: its parameters are the ones saved
    optimizer: torch.optim.Optimizer
    ema: Any
    loop: Loop
    run_dir: Path
    device: torch.device
    info: dist.DistInfo
    log: Any
    grad_every: int = 1  # record the per-layer gradient norms every this many steps
    dtype: torch.dtype | None = field(init=False)  # of the forward pass under autocast (None: off)
    scaler: torch.amp.GradScaler = field(init=False)
    best_state: dict[str, torch.Tensor] | None = field(default=None, init=False)  # a copy
    flops_per_image: float | None = field(default=None, init=False)  # of the first step counted
    batch_images: int = field(default=0, init=False)  # images per step on this rank

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
                reason = should_stop(config, loop, stop, self.info, self.device)
                if reason == "time":
                    timed_out = True
                    break
                if reason:
                    bar.close()
                    return self.interrupt(reason)
                if config.save_every and loop.step % config.save_every == 0:
                    self.save(evaluated=False)  # what a torchrun restart resumes from
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
        batch = {k: to_device(v, self.device, self.config.channels_last) for k, v in batch.items()}
        self.batch_images = self.batch_images or len(batch["image"])
        # The summary's GFLOP/s: step 0 alone is counted, since counting can route a kernel
        # (attention) another way, and a resumed run must repeat the uninterrupted one exactly.
        if loop.step == 0 and not config.compile:
            loss, flops = counted(lambda: self.forward_backward(batch))
            self.flops_per_image = flops / self.batch_images
        else:
            loss = self.forward_backward(batch)
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

    def forward_backward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of ``batch`` under the run's precision, and its gradients."""
        with autocast(self.device, self.dtype):
            loss = self.task.loss(self.net, batch)["loss"]
        if not torch.isfinite(loss):
            loop = self.loop
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {loop.step} (epoch {loop.epoch + 1}); "
                f"{self.last_checkpoint()} (try a lower --lr or --clip-grad)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        return loss

    def record_grad_norms(self) -> None:
        """Append the per-layer gradient norms of this step (true gradients, loss scale undone)."""
        scaled = self.scaler.is_enabled() and not self.config.clip_grad  # clipping unscaled them
        scale = self.scaler.get_scale() if scaled else 1.0
        loop = self.loop
        loop.grad_norms.append(grad_norm_row(self.model, loop.step, loop.epoch + 1, scale))

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
        metrics = _by_name(self.task.evaluate(self.eval_model, self.data.val))  # ranks pooled
        metrics.pop("count")
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
        if not self.task.maximize:
            score = -score  # e.g. a loss: lower is better
        improved = loop.best is None or score > loop.best
        loop.best = score if improved else loop.best
        loop.bad_epochs = 0 if improved else loop.bad_epochs + 1
        if improved:
            loop.best_epoch = loop.epoch
            self.best_state = {
                k: v.detach().clone() for k, v in self.eval_model.state_dict().items()
            }
        self.save(evaluated=True, best=improved)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(("train", "val")))
        self.log(f"epoch {loop.epoch}: {shown} ({loop.elapsed:.1f} s)")
        if config.patience is not None and loop.bad_epochs >= config.patience:
            self.log(f"early stop: no improvement in {config.patience} epochs")
            return "early_stop"
        return None

    def last_checkpoint(self) -> str:
        """Where training can continue from, for messages: the state file, or that none exists."""
        state = self.run_dir / "state" / "last.pt"
        if state.is_file():
            return f"last good checkpoint: {state}"
        return f"no checkpoint yet in {self.run_dir} (the first is saved at the end of epoch 1)"

    def save(self, evaluated: bool, best: bool = False) -> None:
        """Rank 0 writes, after an evaluation, the weights and the metrics, then state/last.pt.

        The state goes last: it is the commit point. A run killed before it is written resumes
        from the previous state and redoes (exactly, on CPU) what the files written since hold.
        Weights that are not finite are never saved over good ones (NonFiniteLossError).
        """
        if not self.info.is_main:
            return
        run_dir, loop = self.run_dir, self.loop
        for model in (self.model, self.eval_model):
            if not all(v.isfinite().all() for v in model.state_dict().values()):
                raise NonFiniteLossError(
                    f"non-finite weights after step {loop.step} (epoch {loop.epoch}), not saved; "
                    f"{self.last_checkpoint()} (try a lower --lr or --clip-grad)"
                )
        if evaluated:
            meta = {
                **self.data.model_config.to_dict(),
                "epoch": loop.epoch,
                "config": self.config.to_json(),
            }
            # the kernels first: weights of an epoch always find its kernel snapshot, if killed
            save_kernels(self.eval_model, run_dir, loop.epoch)
            save_weights(self.eval_model, run_dir / "weights" / "last.safetensors", meta)
            if best:
                save_weights(self.eval_model, run_dir / "weights" / "best.safetensors", meta)
            write_grad_norms(loop.grad_norms, run_dir)
            write_metrics_csv(loop.history, run_dir / "metrics.csv")
            write_curves(loop.history, run_dir / "curves.png")
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "loop": dict(vars(loop)),
        }
        save_state(state, run_dir / "state" / "last.pt")

    def score_test(self) -> dict[str, float]:
        """The final score, once: the best epoch's weights (chosen on the validation split) go
        into ``eval_model``, which is evaluated on the test split; rank 0 writes metrics.json
        with that epoch, its validation metrics and the test metrics (``test_*``)."""
        loop, info = self.loop, self.info
        state = self.best_state
        if state is None:  # resumed after its best epoch: the weights rank 0 saved then
            dist.barrier(info)
            state = self.saved_best()
        self.eval_model.load_state_dict(state)
        scores = _by_name(self.task.evaluate(self.eval_model, self.data.test))  # ranks pooled
        scores["count"] = int(scores["count"])
        best = loop.history[loop.best_epoch - 1] if loop.best_epoch else {}
        summary = {
            "epoch": loop.best_epoch,
            **{k: v for k, v in best.items() if k.startswith("val_")},
            **{f"test_{k}": v for k, v in scores.items()},
        }
        if info.is_main:
            atomic_write(self.run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "count")
        self.log(f"test, epoch {loop.best_epoch} (chosen on validation): {shown}")
        return summary

    def saved_best(self) -> dict[str, torch.Tensor]:
        """weights/best.safetensors, checked to hold the best epoch the training state names."""
        path = self.run_dir / "weights" / "best.safetensors"
        state, meta = load_weights(path)
        if meta.get("epoch") != self.loop.best_epoch:
            raise CheckpointError(
                f"{path}: holds epoch {meta.get('epoch')}, but the training state's best epoch "
                f"is {self.loop.best_epoch} (written by a run that was interrupted and resumed "
                f"differently); retrain, or score another weights file with antlers eval"
            )
        return state


def _by_name(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics in the order the logs and metrics.csv show them: by name."""
    return dict(sorted(metrics.items()))
