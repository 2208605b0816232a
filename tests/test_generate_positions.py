"""Pixel positions in the caption U-Net's attention: the fixed 2-D sine-cosine table against a
brute-force loop, attention that senses where a pixel is only when asked, and which runs get it
(caption runs from now on; class runs and caption runs saved before keep their network)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from antlers.data import captions as captions_data
from antlers.tasks import default_config
from antlers.tasks.generate import captioned
from antlers.tasks.generate.task import GenerateConfig, GenerateTask, build_unet
from antlers.tasks.generate.unet import (
    Context,
    CrossAttention,
    DiffusionUNet,
    SelfAttention,
    UNetConfig,
    position_embedding,
)


def randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module.eval()


@pytest.mark.parametrize(("h", "w", "channels"), [(4, 6, 16), (3, 3, 10), (2, 5, 3)])
def test_position_embedding_matches_a_loop_over_pixels(h, w, channels):
    q = channels // 4
    expected = torch.zeros(h * w, channels)
    for y in range(h):
        for x in range(w):
            for i in range(q):
                f = 100.0 ** (-i / q)
                row = expected[y * w + x]
                row[i], row[q + i] = math.sin(y * f), math.cos(y * f)
                row[2 * q + i], row[3 * q + i] = math.sin(x * f), math.cos(x * f)
    torch.testing.assert_close(position_embedding(h, w, channels), expected)


def shuffled(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with its pixels moved: pixel ``order[i]`` (row-major) goes to place i."""
    return x.flatten(2)[:, :, order].reshape(x.shape)


@pytest.mark.parametrize("kind", ["self", "cross"])
def test_attention_senses_position_only_with_positions(kind):
    """Without positions, attention treats the pixels as a set: moving them moves the output the
    same way. With positions, where a pixel sits changes what it attends to."""
    torch.manual_seed(1)
    x, order = torch.randn(2, 16, 5, 6), torch.randperm(30)
    words = torch.randn(2, 5, 8)
    context = Context(words, torch.zeros(2, 5, dtype=torch.bool), words.mean(1))
    gaps = {}
    for positions in (False, True):
        if kind == "self":
            layer = randomized(SelfAttention(16, positions=positions))
            args: tuple = ()
        else:
            layer = randomized(CrossAttention(16, 8, positions=positions))
            args = (context,)
        with torch.no_grad():
            moved, out = layer(shuffled(x, order), *args), layer(x, *args)
        gaps[positions] = float((moved - shuffled(out, order)).abs().max())
    assert gaps[False] < 1e-4
    assert gaps[True] > 1e-2


def test_positions_add_no_weights_and_reach_every_attention():
    base = UNetConfig(in_channels=3, image_size=24, num_classes=0, context_dim=8, attention=True)
    plain = DiffusionUNet(base)
    placed = DiffusionUNet(dataclasses.replace(base, positions=True))
    assert plain.state_dict().keys() == placed.state_dict().keys()
    layers = [m for m in placed.modules() if isinstance(m, SelfAttention | CrossAttention)]
    assert len(layers) >= 2
    assert all(m.positions for m in layers)


def test_new_caption_runs_get_positions_and_older_configs_load_without(monkeypatch):
    small = lambda split, **kw: captions_data.load_captions(split, n=4, **kw)  # noqa: E731
    monkeypatch.setattr(captioned, "load_captions", small)
    config = default_config("generate", data="captions")
    model_config = captioned.caption_data(GenerateTask(), config, "unet_tiny").model_config
    assert model_config.positions
    new = attention_positions(model_config)
    assert new
    assert all(new)

    saved = model_config.to_dict()
    del saved["positions"]  # a caption run recorded before positions existed
    older = GenerateConfig.from_dict(saved)
    assert not older.positions
    old = attention_positions(older)
    assert old
    assert not any(old)


def attention_positions(config: GenerateConfig) -> list[bool]:
    """``positions`` of each attention layer of the network ``config`` builds."""
    layers = build_unet(config).modules()
    return [m.positions for m in layers if isinstance(m, SelfAttention | CrossAttention)]
