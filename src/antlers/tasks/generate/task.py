"""Image generation with a class-conditioned diffusion model (DDPM, Ho et al. 2020).

The task contract (``antlers.tasks.base.Task``). Training: add noise to a real image at a random
timestep t (the closed-form q(x_t | x_0), DDPM eq. 4) and train the U-Net to predict that noise
with a per-pixel mean squared error (DDPM's L_simple, eq. 14). 10% of the labels are replaced
by the null class, so one network is both the conditional and the unconditional model of
classifier-free guidance. The engine keeps an EMA of the weights (``--ema``), which is what is
evaluated, saved and sampled from.

Model names: ``unet_tiny``, ``unet_small``, ``unet`` (sizes in ``unet.UNET_SIZES``),
optionally followed by ``:linear`` or ``:cosine`` to pick the noise schedule (default cosine),
e.g. ``--model unet_small:linear``. Images: float (B, C, H, W) in [0, 1] outside, [-1, 1] inside.

``--data captions`` trains on captions instead of classes (captioned.py): the labels are then
token ids (B, L), and dropping a label drops the whole caption.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.loader import TensorLoader
from antlers.tasks.base import (
    ModelConfig,
    TaskData,
    model_fields,
)
from antlers.tasks.generate.captioned import (
    CAPTIONS,
    build_caption_unet,
    caption_data,
    caption_eval_loader,
    is_caption_run,
    prompt_tokens,
)
from antlers.tasks.generate.sampling import Sample, sample
from antlers.tasks.generate.schedule import (
    NOISE_SCHEDULES,
    NoiseSchedule,
    min_snr_weights,
    q_sample,
)
from antlers.tasks.generate.unet import UNET_SIZES, DiffusionUNet, UNetConfig
from antlers.tasks.splits import image_eval_loader, loader_options, validation_split

__all__ = ["GenerateConfig", "GenerateTask", "build_unet", "parse_unet_name"]

NO_FLIP = {"mnist", "digits"}  # mirroring changes a digit
VAL_IMAGES = 1000  # the validation (and the final test) loss uses at most this many images
# caption runs' loss weighting: Hang et al.'s gamma (docs/experiments/caption-recipe.md)
MIN_SNR = 5.0
# the captioned world trains the small U-Net (the one its benchmark records), which learns faster
# from more, smaller steps and a short warm-up (docs/experiments/caption-recipe.md)
CAPTION_RECIPE = MappingProxyType(
    {"model": "unet_small", "batch_size": 64, "lr": 4e-3, "warmup": 0.05}
)


@dataclass(frozen=True, kw_only=True)
class GenerateConfig(ModelConfig):
    """A diffusion run's model config: the noise schedule and its T, and the label dropout the
    model was trained with. ``mean``/``std`` stay empty (the U-Net sees [-1, 1] pixels).
    Caption runs: ``vocabulary`` (the tokenizer's words; empty for class runs) and
    ``max_words`` (the longest caption, the text encoder's positions); ``positions``: pixel
    positions in the U-Net's attention (caption runs since they were added; a run saved before
    loads without them, as it was trained); ``canonical``: the tokenizer rewrites relations
    from the first-named thing's side (``text.Tokenizer``; likewise, off for older runs)."""

    noise_schedule: str = "cosine"
    timesteps: int = 1000
    p_uncond: float = 0.1
    vocabulary: tuple[str, ...] = ()
    max_words: int = 0
    positions: bool = False
    canonical: bool = False


def parse_unet_name(name: str) -> tuple[str, str]:
    """'unet_small:linear' -> ('unet_small', 'linear'); the schedule defaults to cosine."""
    size, _, schedule = name.partition(":")
    schedule = schedule or "cosine"
    if size not in UNET_SIZES or schedule not in NOISE_SCHEDULES:
        raise ValueError(
            f"unknown model {name!r}; allowed: {', '.join(UNET_SIZES)}, optionally with "
            f":{' or :'.join(NOISE_SCHEDULES)} (e.g. unet_small:linear)"
        )
    return size, schedule


def build_unet(config: GenerateConfig) -> nn.Module:
    """The U-Net named by ``config.model`` for the config's channels, size and classes (a
    ``CaptionUNet`` for a caption run)."""
    size, _ = parse_unet_name(config.model)
    channels, mults, blocks, attention, patch = UNET_SIZES[size]
    unet = UNetConfig(
        in_channels=config.in_channels,
        image_size=config.image_size[0],
        num_classes=len(config.classes),
        channels=channels,
        mults=mults,
        blocks=blocks,
        attention=attention,
        patch=patch,
    )
    return build_caption_unet(config, unet) if is_caption_run(config) else DiffusionUNet(unet)


@dataclass(frozen=True)
class GenerateTask:
    """``noise_schedule`` and ``timesteps``: the forward process trained on (the schedule comes
    from the model name, ``--model unet_small:linear``); ``p_uncond``: label dropout for
    classifier-free guidance (Ho & Salimans 2022); ``min_snr``: the loss's Min-SNR-gamma
    weighting (``schedule.min_snr_weights``; caption runs, ``MIN_SNR``), None for L_simple."""

    name: ClassVar[str] = "generate"
    primary_metric: ClassVar[str] = "loss"
    maximize: ClassVar[bool] = False
    default_model: ClassVar[str] = "unet"
    noise_schedule: str = "cosine"
    timesteps: int = 1000
    p_uncond: float = 0.1
    min_snr: float | None = None
    config_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "data": "fashion-mnist",
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "batch_size": 128,
            "ema": 0.999,
        }
    )
    data_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType(
        {CAPTIONS: CAPTION_RECIPE}
    )
    config_type: ClassVar[type[GenerateConfig]] = GenerateConfig

    def configure(self, config: TrainConfig) -> GenerateTask:
        _, schedule = parse_unet_name(config.model or self.default_model)
        min_snr = MIN_SNR if config.data == CAPTIONS else None
        return dataclasses.replace(self, noise_schedule=schedule, min_snr=min_snr)

    @functools.cached_property
    def schedule(self) -> NoiseSchedule:
        """The noise schedule the loss and the evaluation use."""
        return NoiseSchedule.make(self.noise_schedule, self.timesteps)

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData:
        from antlers.data import load_dataset

        if config.data == CAPTIONS:
            return caption_data(self, config, config.model or self.default_model, rank, world_size)
        kwargs = {"data_dir": config.data_dir, "image_size": config.image_size}
        kwargs |= {"strict": config.strict, "seed": config.seed, "cache": config.data_cache}
        whole = load_dataset(config.data, "train", **kwargs)
        train, val = validation_split(whole, config.seed)
        test = load_dataset(config.data, "test", **kwargs)
        model = config.model or self.default_model
        _, schedule = parse_unet_name(model)
        fields = model_fields(self.name, model, config.data, train.pixels, train.classes, False)
        model_config = GenerateConfig(
            **fields,
            noise_schedule=schedule,
            timesteps=self.timesteps,
            p_uncond=self.p_uncond,
        )
        options = loader_options(config, rank, world_size, len(train.labels))
        options["flip"] = config.augment and train.name not in NO_FLIP
        n_val, n_test = min(VAL_IMAGES, len(val)), min(VAL_IMAGES, len(test))
        held_out = loader_options(config, rank, world_size)
        return TaskData(
            train=TensorLoader.of(train, config.batch_size, **options),
            val=TensorLoader.of(val.subset(range(n_val)), 250, **held_out),
            test=TensorLoader.of(test.subset(range(n_test)), 250, **held_out),
            test_set=test,
            model_config=model_config,
        )

    def build_model(self, config: GenerateConfig) -> nn.Module:
        return build_unet(config)

    def noise_loss(
        self, model: nn.Module, images: Tensor, labels: Tensor | None, t: Tensor, noise: Tensor
    ) -> Tensor:
        """DDPM's L_simple (eq. 14): mean over pixels of (eps - eps_theta(x_t, t, y))^2, each
        image's term weighted by ``min_snr_weights`` when ``min_snr`` is set."""
        x_t = q_sample(self.schedule, images * 2 - 1, t, noise)
        eps = model(x_t, t, labels).float()
        if self.min_snr is None:
            return F.mse_loss(eps, noise)
        per_image = F.mse_loss(eps, noise, reduction="none").flatten(1).mean(1)
        return (min_snr_weights(self.schedule, t, self.min_snr) * per_image).mean()

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Noise at a uniform random t (DDPM algorithm 1); ``p_uncond`` of labels (captions:
        whole rows of token ids) -> null (-1). Randomness comes from the global RNG, which the
        engine seeds per step."""
        images, labels = batch["image"], batch["label"]
        t = torch.randint(0, self.timesteps, (len(images),), device=images.device)
        noise = torch.randn_like(images)
        drop = torch.rand(len(labels), device=labels.device) < self.p_uncond
        labels = torch.where(drop.view(-1, *[1] * (labels.ndim - 1)), -1, labels)
        return {"loss": self.noise_loss(model, images, labels, t, noise)}

    def predict(self, model: nn.Module, config: GenerateConfig, images: Any) -> Any:
        """Generation has no input image: ValueError pointing at ``sample``."""
        raise ValueError("a generate run makes images instead of predicting: use Run.sample(n)")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: TensorLoader) -> dict[str, float]:
        """The noise-prediction loss on validation images at fixed (seeded) t and noise, so epochs
        compare: one generator per batch, seeded with the batch index (so with a world size
        other than 1 the draws, and the figure, differ a little); pooled over the ranks."""
        model.eval()
        device = next(model.parameters()).device
        sums = torch.zeros(2, dtype=torch.float64)  # loss x images, images
        for b, batch in enumerate(loader.epoch(0)):
            images = batch["image"].to(device)
            g = torch.Generator().manual_seed(1000 + b)
            t = torch.randint(0, self.timesteps, (len(images),), generator=g).to(device)
            noise = torch.randn(images.shape, generator=g).to(device)
            loss = self.noise_loss(model, images, batch["label"].to(device), t, noise)
            sums += torch.tensor([loss.item() * len(images), len(images)], dtype=torch.float64)
        total, count = dist.pool_sum(sums, loader.world_size > 1).tolist()
        return {"loss": total / count, "count": count}

    def eval_loader(
        self,
        config: GenerateConfig,
        data: str,
        split: str = "test",
        data_dir: str | None = None,
        seed: int = 0,
    ) -> TensorLoader:
        """The ``split`` of ``data`` at the model's image size (see ``eval_image_set``)."""
        if is_caption_run(config):
            return caption_eval_loader(config, split, seed)
        return image_eval_loader(config, data, split, data_dir, seed, batch_size=250)

    def labels_for(self, classes: Sequence[str], n: int, label: str | int | None) -> Tensor:
        """(n,) labels: all ``label`` (a class name or index), or each class in turn if None."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not classes:
            raise ValueError(
                "this run draws captions: give a prompt (--prompt 'a red circle'; '' for none)"
            )
        if label is None:
            return torch.arange(n) % len(classes)
        if isinstance(label, str) and label in classes:  # a name first, then an index
            label = list(classes).index(label)
        elif isinstance(label, str) and not label.isdigit():
            raise ValueError(f"unknown class {label!r}; classes: {', '.join(classes)}")
        if not 0 <= int(label) < len(classes):
            raise ValueError(f"class index {label} out of range [0, {len(classes)})")
        return torch.full((n,), int(label), dtype=torch.long)

    def prompt_tokens(self, config: GenerateConfig, n: int, prompt: str | list[str]) -> Tensor:
        """A caption run's token ids (n, L) for ``prompt`` (see ``captioned.prompt_tokens``)."""
        return prompt_tokens(config, n, prompt)

    def sample(
        self, model: nn.Module, config: GenerateConfig, labels: Tensor, **options: Any
    ) -> Sample:
        """``Run.sample``: one image per label (n,) (-1: unconditional) or caption (n, L) token
        ids (``captioned.prompt_tokens``) from ``model`` with the schedule ``config`` names;
        ``options`` go to ``sampling.sample`` (sampler, steps, eta, guidance, seed)."""
        schedule = NoiseSchedule.make(config.noise_schedule, config.timesteps)
        h, w = config.image_size
        device = next(model.parameters()).device
        model.eval()
        shape = (len(labels), config.in_channels, h, w)
        return sample(model, schedule, shape, labels=labels, device=device, **options)

    def predict_files(
        self, model: nn.Module, config: GenerateConfig, paths: list[str], out: Any, **_: Any
    ) -> Any:
        raise ValueError("a generate run makes images instead of predicting: use antlers sample")

    def report(self, run_dir: Path, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """A class-conditional (or prompt) sample grid, the noising-schedule plot and a
        trajectory strip."""
        from antlers.tasks.generate.report import write_report

        return write_report(self, run_dir, model, data)
