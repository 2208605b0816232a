"""The baseline of benchmarks/generate.py: diffusers' UNet2DModel and DDPMScheduler, trained
with antlers' recipe (optimizer, learning-rate schedule, batch, flips, EMA) for a wall time, and
sampled with diffusers' own DDPM and DDIM schedulers."""

from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from antlers.data import load_dataset
from antlers.engine.loader import TensorLoader
from antlers.engine.schedule import learning_rate
from antlers.engine.training import make_ema

DATA = "fashion-mnist"


def require_diffusers() -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        sys.exit(
            "benchmarks/generate.py needs diffusers for its baseline: "
            ".venv/bin/pip install diffusers (or pip install -e '.[bench]')"
        )


def baseline_unet() -> torch.nn.Module:
    """diffusers' UNet2DModel at about our unet_small's parameter count (0.38 M vs 0.37 M)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 24, 48),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=8,
        attention_head_dim=8,
        num_class_embeds=10,
    )


def train_baseline(seconds: float, config: object, seed: int) -> tuple[torch.nn.Module, int]:
    """diffusers' model and DDPMScheduler, trained with our recipe for ``seconds``; returns the
    EMA model and the number of steps."""
    from diffusers import DDPMScheduler

    torch.manual_seed(seed)
    model = baseline_unet()
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.peak_lr, weight_decay=0.0)
    ema = make_ema(model, config.ema)
    data = load_dataset(DATA, "train")
    loader = TensorLoader(
        data.images, data.labels, config.batch_size, shuffle=True, seed=seed, flip=True,
        drop_last=True,
    )  # fmt: skip
    start, step, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for batch in loader.epoch(epoch):
            progress = (time.perf_counter() - start) / seconds
            if progress >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.schedule, progress, config.peak_lr)
            x0 = batch["image"] * 2 - 1
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (len(x0),))
            x_t = scheduler.add_noise(x0, noise, t)
            pred = model(x_t, t, class_labels=batch["label"]).sample
            loss = F.mse_loss(pred, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
            step += 1
        epoch += 1
    return ema.module.eval(), step


@torch.no_grad()
def sample_baseline(
    model: torch.nn.Module, labels: Tensor, steps: int, seed: int, eta: float = 0.0
) -> Tensor:
    """DDPM-1000 (DDPMScheduler) or DDIM-``steps`` (DDIMScheduler with ``eta``) from diffusers."""
    from diffusers import DDIMScheduler, DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    if steps != 1000:
        scheduler = DDIMScheduler.from_config(scheduler.config)
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((len(labels), 1, 28, 28), generator=g)
    extra = {"eta": eta} if steps != 1000 else {}
    for t in scheduler.timesteps:
        eps = model(x, t, class_labels=labels).sample
        x = scheduler.step(eps, t, x, generator=g, **extra).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


def baseline_step_flops(model: torch.nn.Module, batch_size: int) -> int:
    """FLOPs of one training step's forward and backward of diffusers' model (FlopCounterMode)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    twin = copy.deepcopy(model).train()
    x, t = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 1000, (batch_size,))
    labels = torch.randint(0, 10, (batch_size,))
    with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
        F.mse_loss(twin(x, t, class_labels=labels).sample, torch.randn_like(x)).backward()
    return int(counter.get_total_flops())
