"""From a caption to what the U-Net attends to: a word-level tokenizer and a small text encoder.

* :class:`Tokenizer`: one id per word of a fixed vocabulary (``GenerateConfig.vocabulary``),
  0 for padding; an unknown word is a ValueError listing the known words. The empty prompt
  is zero words: the unconditional model. With ``canonical``, a relation is first rewritten
  from the first-named thing's side ("A right of B" -> "B left of A",
  ``data.captions.canonical``), so word order alone says which object goes where.
* :class:`TextEncoder`: learned token and position embeddings and a few pre-norm Transformer
  layers (``torch.nn.TransformerEncoder``), trained jointly with the U-Net (no pretrained text
  model, unlike Stable Diffusion's CLIP or Imagen's T5). A start token is put before every
  caption, so even the empty one has a token to attend to. Padding (id 0, and -1, which the
  samplers use for "no condition") is masked out of the attention and of the pooled mean.

Token ids: int64 (B, L), padded on the right with 0. Output: ``unet.Context`` with tokens
(B, L + 1, D), the padding mask (B, L + 1) (True: padding) and the pooled embedding (B, D).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from antlers.data.captions import canonical
from antlers.tasks.generate.unet import Context

__all__ = ["TEXT_DIM", "TextEncoder", "Tokenizer"]

TEXT_DIM, TEXT_LAYERS, TEXT_HEADS = 64, 2, 4


@dataclass(frozen=True)
class Tokenizer:
    """Words <-> ids: ``vocabulary[i]`` has id i + 1; 0 is padding. ``max_words``: the longest
    caption the model's position table holds; ``canonical``: relations rewritten first."""

    vocabulary: tuple[str, ...]
    max_words: int
    canonical: bool = False

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s words (lower-cased, split on spaces, relations rewritten when
        ``canonical``); unknown word: ValueError."""
        ids = {word: i + 1 for i, word in enumerate(self.vocabulary)}
        words = (canonical(text) if self.canonical else text).lower().split()
        for word in words:
            if word not in ids:
                known = ", ".join(self.vocabulary)
                raise ValueError(f"unknown word {word!r} in the prompt; known words: {known}")
        if len(words) > self.max_words:
            raise ValueError(f"the prompt has {len(words)} words, at most {self.max_words} fit")
        return [ids[word] for word in words]

    def decode(self, ids: Sequence[int]) -> str:
        """The words of ``ids``, padding dropped."""
        return " ".join(self.vocabulary[i - 1] for i in ids if i > 0)

    def batch(self, texts: Sequence[str], length: int | None = None) -> Tensor:
        """int64 (len(texts), length) ids padded with 0 (``length``: ``max_words`` if None)."""
        length = self.max_words if length is None else length
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


class TextEncoder(nn.Module):
    """Token ids (B, L) -> ``Context`` (see the module docstring for shapes)."""

    def __init__(
        self, vocab_size: int, max_words: int, dim: int = TEXT_DIM, layers: int = TEXT_LAYERS
    ):
        super().__init__()
        self.start = vocab_size + 1  # ids: 0 padding, 1..V words, V + 1 start
        self.token = nn.Embedding(vocab_size + 2, dim)
        self.position = nn.Embedding(max_words + 1, dim)
        layer = nn.TransformerEncoderLayer(
            dim, TEXT_HEADS, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> Context:
        tokens = tokens.clamp_min(0)  # -1: "no condition", the empty caption
        start = torch.full_like(tokens[:, :1], self.start)
        tokens = torch.cat([start, tokens], dim=1)
        padding = tokens == 0
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.token(tokens) + self.position(positions)[None]
        h = self.norm(self.encoder(h, src_key_padding_mask=padding))
        keep = (~padding).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1)
        return Context(h, padding, pooled)
