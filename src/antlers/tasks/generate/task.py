"""Image generation with a class-conditioned diffusion model (DDPM, Ho et al. 2020).

The task contract (see ``antlers.tasks``). Training: add noise to a real image at a random
timestep t (the closed-form q(x_t | x_0), DDPM eq. 4) and train the U-Net to predict that noise
with a per-pixel mean squared error (DDPM's L_simple, eq. 14). 10% of the labels are replaced
by the null class, so one network is both the conditional and the unconditional model of
classifier-free guidance. The engine keeps an EMA of the weights (``--ema``), which is what is
evaluated, saved and sampled from.

Model names: ``unet_tiny``, ``unet_small``, ``unet`` (sizes in ``diffusion_unet.UNET_SIZES``),
optionally followed by ``:linear`` or ``:cosine`` to pick the noise schedule (default cosine),
e.g. ``--model unet_small:linear``. Images: float (B, C, H, W) in [0, 1] outside, [-1, 1] inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.engine.loader import TensorLoader
from antlers.tasks.generate.schedule import NOISE_SCHEDULES, NoiseSchedule, q_sample
from antlers.tasks.generate.unet import UNET_SIZES, DiffusionUNet, UNetConfig

__all__ = ["GenerateData", "GenerateTask", "build_unet", "parse_model_name"]

NO_FLIP = {"mnist", "digits"}  # mirroring changes a digit
VAL_IMAGES = 1000  # the per-epoch validation loss uses this many test images


@dataclass
class GenerateData:
    train: TensorLoader
    val: TensorLoader
    meta: dict[str, Any]


def parse_model_name(name: str) -> tuple[str, str]:
    """'unet_small:linear' -> ('unet_small', 'linear'); the schedule defaults to cosine."""
    size, _, schedule = name.partition(":")
    schedule = schedule or "cosine"
    if size not in UNET_SIZES or schedule not in NOISE_SCHEDULES:
        raise ValueError(
            f"unknown model {name!r}; allowed: {', '.join(UNET_SIZES)}, optionally with "
            f":{' or :'.join(NOISE_SCHEDULES)} (e.g. unet_small:linear)"
        )
    return size, schedule


def build_unet(meta: dict[str, Any]) -> DiffusionUNet:
    """The U-Net named by ``meta["model"]`` for the meta's channels, size and classes."""
    size, _ = parse_model_name(meta["model"])
    channels, mults, blocks, attention, patch = UNET_SIZES[size]
    config = UNetConfig(
        in_channels=meta["in_channels"],
        image_size=meta["image_size"][0],
        num_classes=len(meta["classes"]),
        channels=channels,
        mults=mults,
        blocks=blocks,
        attention=attention,
        patch=patch,
    )
    return DiffusionUNet(config)


def _bare(model: nn.Module) -> nn.Module:
    """The U-Net inside DDP / AveragedModel / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def schedule_of(meta: dict[str, Any]) -> NoiseSchedule:
    return NoiseSchedule.make(meta["noise_schedule"], meta["timesteps"])


@dataclass(frozen=True)
class GenerateTask:
    name: str = "generate"
    primary_metric: str = "loss"
    maximize: bool = False
    default_model: str = "unet"
    timesteps: int = 1000
    p_uncond: float = 0.1  # label dropout for classifier-free guidance (Ho & Salimans 2022)
    config_defaults: dict[str, Any] = field(
        default_factory=lambda: {
            "data": "fashion-mnist",
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "batch_size": 128,
            "label_smoothing": 0.0,
            "ema": 0.999,
        }
    )

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> GenerateData:
        from antlers.data import load_dataset

        kwargs = {"data_dir": config.data_dir, "image_size": config.image_size}
        kwargs |= {"strict": config.strict, "seed": config.seed}
        train = load_dataset(config.data, "train", **kwargs)
        val = load_dataset(config.data, "test", **kwargs)
        model = config.model or self.default_model
        _, schedule = parse_model_name(model)
        meta = {
            "task": self.name,
            "model": model,
            "in_channels": int(train.images.shape[1]),
            "image_size": [int(train.images.shape[2]), int(train.images.shape[3])],
            "classes": list(train.classes),
            "data": config.data,
            "noise_schedule": schedule,
            "timesteps": self.timesteps,
            "p_uncond": self.p_uncond,
        }
        flip = config.augment and train.name not in NO_FLIP
        n_val = min(VAL_IMAGES, len(val.labels))
        return GenerateData(
            train=TensorLoader(
                train.images,
                train.labels,
                config.batch_size,
                shuffle=True,
                seed=config.seed,
                flip=flip,
                rank=rank,
                world_size=world_size,
                drop_last=len(train.labels) > 4 * config.batch_size,
            ),
            val=TensorLoader(
                val.images[:n_val], val.labels[:n_val], 250, rank=rank, world_size=world_size
            ),
            meta=meta,
        )

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        model = build_unet(meta)
        model.schedule = schedule_of(meta)  # the sampler's constants travel with the model
        return model

    def noise_loss(
        self, model: nn.Module, images: Tensor, labels: Tensor | None, t: Tensor, noise: Tensor
    ) -> Tensor:
        """DDPM's L_simple (eq. 14): mean over pixels of (eps - eps_theta(x_t, t, y))^2."""
        x_t = q_sample(_bare(model).schedule, images * 2 - 1, t, noise)
        return F.mse_loss(model(x_t, t, labels).float(), noise)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], **_: Any) -> dict[str, Tensor]:
        """Noise at a uniform random t (DDPM algorithm 1); ``p_uncond`` of labels -> null (-1).
        Randomness comes from the global RNG, which the engine seeds per step."""
        images, labels = batch["image"], batch["label"]
        t = torch.randint(0, self.timesteps, (len(images),), device=images.device)
        noise = torch.randn_like(images)
        drop = torch.rand(len(labels), device=labels.device) < self.p_uncond
        labels = torch.where(drop, -1, labels)
        return {"loss": self.noise_loss(model, images, labels, t, noise)}

    @torch.no_grad()
    def predict(self, model: nn.Module, labels: Tensor, **options: Any) -> Tensor:
        """Generation has no input image: one DDIM sample (C, H, W) in [0, 1] per label (B,)
        (-1: unconditional); ``options`` go to ``diffusion_sampling.sample``."""
        from antlers.tasks.generate.sampling import sample

        model.eval()
        unet = _bare(model)
        size = unet.config.image_size
        shape = (len(labels), unet.config.in_channels, size, size)
        return sample(model, unet.schedule, shape, labels=labels, **options).images

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: TensorLoader) -> dict[str, float]:
        """The noise-prediction loss on validation images at fixed (seeded) t and noise, so epochs
        compare: one generator per batch, seeded with the batch index."""
        model.eval()
        device = next(model.parameters()).device
        total = count = 0.0
        for b, batch in enumerate(loader.epoch(0)):
            images = batch["image"].to(device)
            g = torch.Generator().manual_seed(1000 + b)
            t = torch.randint(0, self.timesteps, (len(images),), generator=g).to(device)
            noise = torch.randn(images.shape, generator=g).to(device)
            loss = self.noise_loss(model, images, batch["label"].to(device), t, noise)
            total += loss.item() * len(images)
            count += len(images)
        return {"loss": total / count, "count": count}

    def test_loader(
        self, meta: dict[str, Any], data: str, data_dir: str | None = None
    ) -> TensorLoader:
        from antlers.data import load_dataset

        test = load_dataset(data, "test", data_dir=data_dir, image_size=meta["image_size"][0])
        if list(test.classes) != list(meta["classes"]):
            raise ValueError(f"{data}: its classes {list(test.classes)} differ from the model's")
        return TensorLoader(test.images, test.labels, 250)

    def labels_for(self, classes: list[str], n: int, label: str | int | None) -> Tensor:
        """(n,) labels: all ``label`` (a class name or index), or each class in turn if None."""
        if label is None:
            return torch.arange(n) % len(classes)
        if isinstance(label, str) and label in classes:  # a name first, then an index
            label = classes.index(label)
        elif isinstance(label, str) and not label.isdigit():
            raise ValueError(f"unknown class {label!r}; classes: {', '.join(classes)}")
        if not 0 <= int(label) < len(classes):
            raise ValueError(f"class index {label} out of range [0, {len(classes)})")
        return torch.full((n,), int(label), dtype=torch.long)

    def run_sample(self, run: Any, n: int, label: str | int | None = None, **options: Any) -> Any:
        """``Run.sample``: a ``diffusion_sampling.Sample`` of n images from the run's model."""
        from antlers.tasks.generate.sampling import sample

        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        labels = self.labels_for(run.classes, n, label)
        unet = _bare(run.model)
        size = unet.config.image_size
        shape = (n, unet.config.in_channels, size, size)
        device = next(run.model.parameters()).device
        return sample(run.model, unet.schedule, shape, labels=labels, device=device, **options)

    def run_predict(self, run: Any, images: Any) -> Any:
        raise ValueError("a generate run makes images instead of predicting: use Run.sample(n)")

    def predict_files(self, run: Any, paths: list[str], out: Path | None = None, **_: Any) -> Any:
        raise ValueError("a generate run makes images instead of predicting: use antlers sample")

    def report(self, run_dir: Path, model: nn.Module, data: GenerateData) -> dict[str, Any]:
        """A class-conditional sample grid, the noising-schedule plot and a trajectory strip."""
        from antlers.tasks.generate.figures import write_report_figures

        return write_report_figures(run_dir, model, data.meta)
