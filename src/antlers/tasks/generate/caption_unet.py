"""The caption-conditioned denoiser: a text encoder and a U-Net with cross-attention, trained
together (``eps_theta(x_t, t, caption)``).

``forward(x, t, tokens)`` has the class network's signature, so the samplers, the loss and
classifier-free guidance use it unchanged: tokens int64 (B, L) from ``text.Tokenizer`` (0:
padding), a row of -1 (what ``sampling.guided_eps`` passes for "no condition") or None is the
empty caption, the unconditional model that caption dropout trains.
"""

from __future__ import annotations

from torch import Tensor, nn

from antlers.tasks.generate.text import TextEncoder
from antlers.tasks.generate.unet import DiffusionUNet, UNetConfig

__all__ = ["CaptionUNet"]


class CaptionUNet(nn.Module):
    """``text`` (TextEncoder) -> ``unet`` (DiffusionUNet with ``context_dim`` = the text width)."""

    def __init__(self, config: UNetConfig, vocab_size: int, max_words: int):
        super().__init__()
        self.text = TextEncoder(vocab_size, max_words, dim=config.context_dim)
        self.unet = DiffusionUNet(config)

    def forward(self, x: Tensor, t: Tensor, tokens: Tensor | None = None) -> Tensor:
        if tokens is None:
            tokens = t.new_full((len(t), 1), -1)
        return self.unet(x, t, None, self.text(tokens))
