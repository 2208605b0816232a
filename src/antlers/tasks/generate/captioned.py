"""The generate task on the captioned world (``--data captions``): its data, its network and the
prompts it samples from.

A caption run is a generate run whose ``GenerateConfig.vocabulary`` is not empty: its labels
are token ids (N, ``max_words``) instead of class indices, its network a ``CaptionUNet``, and
label dropout (``p_uncond``) drops whole captions, which trains the unconditional model that
classifier-free guidance needs. Left-right flips are off: they would swap "left of" and
"right of".
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from torch import Tensor

from antlers.data.captions import VOCABULARY, all_captions, load_captions
from antlers.engine.loader import TensorLoader
from antlers.tasks.base import TaskData, model_fields
from antlers.tasks.generate.caption_unet import CaptionUNet
from antlers.tasks.generate.text import TEXT_DIM, Tokenizer
from antlers.tasks.generate.unet import UNetConfig
from antlers.tasks.splits import check_split, loader_options

if TYPE_CHECKING:
    from antlers.config import TrainConfig
    from antlers.tasks.generate.task import GenerateConfig

__all__ = [
    "CAPTIONS",
    "build_caption_unet",
    "caption_data",
    "caption_eval_loader",
    "is_caption_run",
    "prompt_tokens",
    "tokenizer",
]

CAPTIONS = "captions"  # the --data name
MAX_WORDS = max(len(str(c).split()) for c in all_captions())


def is_caption_run(config: Any) -> bool:
    """Whether a generate model config describes a caption-conditioned run."""
    return bool(getattr(config, "vocabulary", ()))


def tokenizer(config: GenerateConfig) -> Tokenizer:
    """The word-level tokenizer of a caption run."""
    return Tokenizer(tuple(config.vocabulary), config.max_words, config.canonical)


def prompt_tokens(config: GenerateConfig, n: int, prompt: str | list[str]) -> Tensor:
    """Token ids (n, max_words): ``prompt`` repeated n times, or a list of n prompts; "" is the
    empty caption (unconditional). ValueError for a class run or an unknown word."""
    if not is_caption_run(config):
        raise ValueError("this run is class-conditional: sample it with a class, not a prompt")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    prompts = [prompt] * n if isinstance(prompt, str) else list(prompt)
    if len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for n = {n} images")
    return tokenizer(config).batch(prompts)


def build_caption_unet(config: GenerateConfig, unet: UNetConfig) -> CaptionUNet:
    """The caption network: ``unet`` with cross-attention to a text encoder of ``TEXT_DIM``
    (pixel positions in its attention when ``config.positions``)."""
    unet = dataclasses.replace(
        unet, num_classes=0, context_dim=TEXT_DIM, positions=config.positions
    )
    return CaptionUNet(unet, len(config.vocabulary), config.max_words)


def caption_data(
    task: Any, config: TrainConfig, model: str, rank: int = 0, world_size: int = 1
) -> TaskData:
    """The captioned world's train / val / test loaders (images, token ids) and model config."""
    from antlers.tasks.generate.task import GenerateConfig, parse_unet_name

    size, seed = config.image_size, config.seed
    train, val, test = (
        load_captions(s, image_size=size, seed=seed) for s in ("train", "val", "test")
    )
    fields = model_fields(task.name, model, CAPTIONS, train.images, (), False)
    model_config = GenerateConfig(
        **fields,
        noise_schedule=parse_unet_name(model)[1],
        timesteps=task.timesteps,
        p_uncond=task.p_uncond,
        vocabulary=VOCABULARY,
        max_words=MAX_WORDS,
        positions=True,
        canonical=True,
    )
    words = tokenizer(model_config)  # the one sampling uses too
    options = loader_options(config, rank, world_size, len(train))
    options["flip"] = False  # a mirror swaps "left of" and "right of"
    held = loader_options(config, rank, world_size)
    loader = lambda s, batch, opts: TensorLoader(s.images, words.batch(s.captions), batch, **opts)  # noqa: E731
    return TaskData(
        train=loader(train, config.batch_size, options),
        val=loader(val, 250, held),
        test=loader(test, 250, held),
        test_set=test,
        model_config=model_config,
    )


def caption_eval_loader(config: GenerateConfig, split: str, seed: int = 0) -> TensorLoader:
    """The run's "test" or "val" split of the captioned world, for ``antlers eval``'s loss."""
    check_split(split)
    images = load_captions(split, image_size=config.image_size[0], seed=seed)
    return TensorLoader(images.images, tokenizer(config).batch(images.captions), 250)
