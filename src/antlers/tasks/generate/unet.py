"""A time- and class-conditioned U-Net that predicts the noise in a noisy image (DDPM's eps_theta).

Layout (Ho et al. 2020, appendix B, after PixelCNN++; scaled down for 28-32 px on a CPU):

* the timestep t becomes a sinusoidal embedding (Vaswani et al. 2017, as in DDPM) and an MLP;
  the class label becomes a learned embedding added to it. Label ``num_classes`` is the *null*
  class: training replaces a fraction of labels by it (label dropout), so the same network is
  also the unconditional model that classifier-free guidance needs (Ho & Salimans 2022);
* ``patch`` > 1 first folds each patch x patch block of pixels into channels (PixelUnshuffle,
  the "patchify" of ViT / DiT) and unfolds at the end (PixelShuffle): on a CPU, a 28 x 28 image
  then costs what a 14 x 14 one does, with every pixel still seen;
* residual blocks GroupNorm -> SiLU -> 3x3 conv, with the embedding added between the two convs;
* an encoder that halves the resolution ``len(mults) - 1`` times (stride-2 convs), a middle at the
  lowest resolution with self-attention, a decoder that upsamples (nearest + conv) and
  concatenates the encoder's features at each resolution (the U-Net skip connections);
* the output has the input's shape: the predicted noise epsilon;
* with ``context_dim`` > 0 the network is conditioned on a caption instead (text.py encodes it
  as a ``Context``): every block below the full resolution and the middle attend to the
  caption's tokens (cross-attention, as in Stable Diffusion and Imagen), and the caption's
  pooled embedding is added to the time embedding. Without it, no cross-attention exists and
  the weights are those of the class-conditional network;
* with ``positions`` (caption networks), a fixed 2-D sine-cosine embedding of each pixel's row
  and column (``position_embedding``) is added to the queries of every cross-attention and to
  the queries and keys of the middle self-attention, values untouched: attention weights then
  depend on where a pixel is, which "a circle left of a square" needs (convolutions with
  zero padding only sense it near the border). No parameters: the same weights load either way.

``forward(x, t, labels, context)``: x (B, C, H, W) in [-1, 1], t int64 (B,) in [0, T), labels
int64 (B,) in [0, num_classes] (num_classes or -1 = null / unconditional) or None (all
unconditional); context: a ``Context`` (caption networks) or None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNET_SIZES", "Context", "CrossAttention", "DiffusionUNet", "UNetConfig",
           "position_embedding", "timestep_embedding"]  # fmt: skip


@dataclass(frozen=True)
class UNetConfig:
    """The network's shape. ``mults``: channel multipliers per resolution (len - 1 halvings);
    ``attention``: self-attention at the lowest resolution; ``blocks``: residual blocks per
    level; ``patch``: pixels folded into channels first (1: none); ``context_dim``: the width
    of the caption tokens attended to (0: class-conditional, no cross-attention); ``positions``:
    each pixel's position added to the attention queries (and the self-attention's keys)."""

    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    channels: int = 32
    mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1
    attention: bool = True
    dropout: float = 0.0
    patch: int = 1
    context_dim: int = 0
    positions: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mults", tuple(self.mults))
        factor = self.patch * 2 ** (len(self.mults) - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by {factor} "
                f"(patches of {self.patch}, then {len(self.mults) - 1} halvings); pick --image-size"
            )


# name -> (channels, mults, blocks per level, attention, patch)
UNET_SIZES: dict[str, tuple[int, tuple[int, ...], int, bool, int]] = {
    "unet_tiny": (16, (1, 2), 1, False, 1),
    "unet_small": (24, (1, 2), 1, True, 2),
    "unet": (64, (1, 2), 2, True, 2),
}


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding (B, dim) of integer timesteps t (B,): [cos(t w_i), sin(t w_i)] with
    w_i = max_period^(-i / (dim/2)), i = 0 .. dim/2 - 1 (Transformer positions, as in DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def position_embedding(h: int, w: int, channels: int, device: torch.device | None = None) -> Tensor:
    """Fixed 2-D sine-cosine positions (H*W, channels), row-major: with q = channels // 4 and
    w_i = 100^(-i / q), i = 0 .. q-1, pixel (y, x) gets [sin(y w_i), cos(y w_i), sin(x w_i),
    cos(x w_i)], zero-padded to ``channels`` (the 1-D embedding of Vaswani et al. per axis, as
    MAE's 2-D one; periods from 2 pi to 200 pi pixels suit a 16 x 16 feature map)."""
    q = channels // 4
    freqs = torch.exp(-math.log(100.0) * torch.arange(q, device=device) / max(q, 1))
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    ay, ax = (a.flatten().float()[:, None] * freqs[None, :] for a in (ys, xs))
    table = torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)
    return F.pad(table, (0, channels - 4 * q))


def _tokens(x: Tensor, positions: bool) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) -> tokens (B, H*W, C) and the same plus ``position_embedding`` when asked."""
    _, c, h, w = x.shape
    tokens = x.flatten(2).transpose(1, 2)
    if not positions:
        return tokens, tokens
    return tokens, tokens + position_embedding(h, w, c, x.device).to(x.dtype)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))) + emb)); a 1x1 conv on the skip when channels change."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """x + multi-head self-attention over the H*W positions (one token per pixel); with
    ``positions``, queries and keys carry the pixel's position, values do not."""

    def __init__(self, channels: int, heads: int = 4, positions: bool = False):
        super().__init__()
        self.norm = _norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.positions = positions

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens, placed = _tokens(self.norm(x), self.positions)  # (B, H*W, C) each
        out, _ = self.attn(placed, placed, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Context(NamedTuple):
    """An encoded caption: tokens (B, L, D), padding (B, L) bool (True: masked out), pooled
    (B, D). Every caption has at least one unmasked token (the start token)."""

    tokens: Tensor
    padding: Tensor
    pooled: Tensor


class CrossAttention(nn.Module):
    """x + multi-head attention from each position of x (queries) to the caption's tokens (keys
    and values), padding masked out: how a pixel reads the words (Rombach et al. 2022). With
    ``positions``, the queries carry the pixel's position: which word a pixel reads may then
    depend on where it is."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4, positions: bool = False):
        super().__init__()
        self.norm = _norm(channels)
        self.attn = nn.MultiheadAttention(
            channels, heads, kdim=context_dim, vdim=context_dim, batch_first=True
        )
        self.positions = positions

    def forward(self, x: Tensor, context: Context) -> Tensor:
        b, c, h, w = x.shape
        _, queries = _tokens(self.norm(x), self.positions)  # (B, H*W, C)
        out, _ = self.attn(
            queries, context.tokens, context.tokens, key_padding_mask=context.padding,
            need_weights=False,
        )  # fmt: skip
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class DiffusionUNet(nn.Module):
    """eps_theta(x_t, t, y): see the module docstring for the layout and the label convention."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c, emb = config.channels, 4 * config.channels
        self.time_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(config.num_classes + 1, emb)  # last row: the null class
        pixels = config.in_channels * config.patch**2  # channels after PixelUnshuffle
        self.conv_in = nn.Conv2d(pixels, c, 3, padding=1)
        widths = [c * m for m in config.mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, width = [c], c
        self.cross = nn.ModuleDict()  # block name -> CrossAttention (caption networks only)
        self.context_emb = nn.Linear(config.context_dim, emb) if config.context_dim else None
        for level, w in enumerate(widths):
            for _ in range(config.blocks):
                self.down.append(ResBlock(width, w, emb, config.dropout))
                self._add_cross(f"down{len(self.down) - 1}", level, w)
                width = w
                skips.append(width)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.mid1 = ResBlock(width, width, emb, config.dropout)
        self.mid_attn = (
            SelfAttention(width, positions=config.positions) if config.attention else nn.Identity()
        )
        self._add_cross("mid", len(widths), width)
        self.mid2 = ResBlock(width, width, emb, config.dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            for _ in range(config.blocks + 1):
                self.up.append(ResBlock(width + skips.pop(), w, emb, config.dropout))
                self._add_cross(f"up{len(self.up) - 1}", level, w)
                width = w
            if level > 0:
                self.upsample.append(nn.Conv2d(width, width, 3, padding=1))
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, pixels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _add_cross(self, name: str, level: int, channels: int) -> None:
        """Cross-attention after block ``name`` when the network reads captions and ``level`` is
        below the full resolution (the middle counts as the level below the lowest)."""
        if self.config.context_dim and level > 0:
            self.cross[name] = CrossAttention(
                channels, self.config.context_dim, positions=self.config.positions
            )

    def _attend(self, name: str, h: Tensor, context: Context | None) -> Tensor:
        if context is None or name not in self.cross:
            return h
        return self.cross[name](h, context)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def embed(self, t: Tensor, labels: Tensor | None, context: Context | None = None) -> Tensor:
        """Time embedding plus class embedding (the null class where labels is None) plus the
        caption's pooled embedding when given: (B, 4c)."""
        if labels is None:
            labels = torch.full_like(t, self.null_class)
        labels = torch.where(labels < 0, self.null_class, labels)  # -1 also means "no class"
        emb = self.time_mlp(timestep_embedding(t, self.config.channels))
        if context is not None and self.context_emb is not None:
            emb = emb + self.context_emb(context.pooled)
        return emb + self.class_emb(labels)

    def forward(
        self, x: Tensor, t: Tensor, labels: Tensor | None = None, context: Context | None = None
    ) -> Tensor:
        emb = self.embed(t, labels, context)
        h = self.conv_in(F.pixel_unshuffle(x, self.config.patch))
        hs, levels = [h], len(self.config.mults)
        blocks = iter(enumerate(self.down))
        for level in range(levels):
            for _ in range(self.config.blocks):
                i, block = next(blocks)
                h = self._attend(f"down{i}", block(h, emb), context)
                hs.append(h)
            if level < levels - 1:
                h = self.downsample[level](h)
                hs.append(h)
        h = self.mid_attn(self.mid1(h, emb))
        h = self.mid2(self._attend("mid", h, context), emb)
        blocks = iter(enumerate(self.up))
        for level in range(levels):
            for _ in range(self.config.blocks + 1):
                i, block = next(blocks)
                h = self._attend(f"up{i}", block(torch.cat([h, hs.pop()], dim=1), emb), context)
            if level < levels - 1:
                h = self.upsample[level](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.config.patch)
