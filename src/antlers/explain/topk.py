"""The dataset images that excite a neuron most: streaming top-k per channel, with patches.

For a layer with output ``(B, C, H, W)``, a channel's response to an image is its maximum over
the ``H x W`` positions (where in the image the pattern appears does not matter). Recipe:

1. Run the model batch by batch and stop right after the layer (the rest costs nothing); on
   the CPU a channels_last copy of the model runs, in batches of about 2 M input values
   (faster than NCHW in batches of 500 for ``fast_resnet``, docs/experiments/cpu-layout.md).
2. Per image and channel: the maximum over positions and the position of the first maximum.
3. Merge each batch into the running top-k of each channel: ``(C, k + B)`` candidates, a stable
   sort by value, keep ``k``. Ties go to the earlier image. Memory is ``O(C x (k + B))``:
   the activations of the whole dataset are never held.
4. The patch of a maximum is its receptive field in the input (the recurrence of
   :mod:`antlers.conv.arithmetic`, traced by :func:`antlers.explain.layers.layer_rf`): early
   layers see a few pixels (an edge, a colour), deep layers most of the image (a part, an object),
   the hierarchy of features of Zeiler & Fergus (2014) and of the lecture's pool5 rows.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from antlers.anatomy.trace import RF, eval_mode
from antlers.explain.layers import capture, layer_rf

__all__ = ["TopK", "channel_maxima", "crop_window", "top_k_activations"]


@dataclass(frozen=True)
class TopK:
    """The top-k of every channel of one layer, best first.

    values:    (C, k) float, the channel's maximum over positions in that image
    indices:   (C, k) int64, the image's index in the dataset (order of iteration)
    positions: (C, k, 2) int64, (row, column) of that maximum in the layer's output
    windows:   (C, k, 4) int64, its receptive field in the input: (y0, y1, x0, x1), ends
               exclusive, not clipped (it may reach into the zero padding)
    rf:        the layer's receptive field per spatial dimension (size, jump, start)
    """

    layer: str
    values: Tensor
    indices: Tensor
    positions: Tensor
    windows: Tensor
    rf: RF


def channel_maxima(activations: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C, H, W) -> per image and channel the maximum (B, C) and its flat position (B, C).

    The position is that of the first maximum in row-major order (``torch.argmax``'s rule).
    """
    values, positions = activations.flatten(2).float().max(dim=2)
    return values, positions


INPUT_VALUES_PER_BATCH = 2_000_000
MAX_BATCH = 2000


def _batches(images: Tensor | Iterable[Tensor], batch_size: int | None) -> Iterator[Tensor]:
    if isinstance(images, Tensor):
        per_image = max(1, images[0].numel())
        batch_size = batch_size or max(1, min(MAX_BATCH, INPUT_VALUES_PER_BATCH // per_image))
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
    else:
        yield from images


def _as_float(batch: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    batch = batch.to(device)
    batch = batch.float().div_(255) if batch.dtype == torch.uint8 else batch.float()
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def _runner(model: nn.Module, device: torch.device) -> tuple[nn.Module, bool]:
    """The model to run, and whether it is channels_last: a channels_last copy on the CPU."""
    if device.type != "cpu":
        return model, False
    return copy.deepcopy(model).to(memory_format=torch.channels_last), True


Best = tuple[Tensor, Tensor, Tensor]  # values, image numbers, flat positions: (C, k) each


def top_k_activations(
    model: nn.Module,
    layer: str,
    images: Tensor | Iterable[Tensor],
    k: int = 8,
    batch_size: int | None = None,
) -> TopK:
    """Top-``k`` images per channel of ``layer`` over ``images``, streaming (see module recipe).

    Args:
        model: any network; it is put in eval mode for the search and given its mode back.
        layer: a ``named_modules`` name whose output is ``(B, C, H, W)``.
        images: uint8 (N, C, H, W) (divided by 255) or float in [0, 1]; or an iterable of such
            batches (a loader's images), numbered in iteration order.
        k: images kept per channel (fewer if the dataset is smaller).
        batch_size: images per forward pass when ``images`` is a tensor (default: about
            2 M input values, at most 2000 images).
    """
    if k < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"k and batch_size must be >= 1, got {k} and {batch_size}")
    device = next(model.parameters()).device
    runner, channels_last = _runner(model, device)
    best: Best | None = None
    seen, width, shape = 0, 1, None
    with torch.no_grad(), eval_mode(runner):
        for batch in _batches(images, batch_size):
            x = _as_float(batch, device, channels_last)
            shape = tuple(x.shape[1:])
            out = capture(runner, x, [layer], stop=True)[layer]
            if out.dim() != 4:
                raise ValueError(f"layer {layer!r} gives {tuple(out.shape)}, not (B, C, H, W)")
            width = out.shape[3]
            v, p = channel_maxima(out)  # (B, C) each
            number = torch.arange(seen, seen + len(x), device=v.device)[:, None].expand_as(v)
            seen += len(x)
            best = _merge(best, (v.T, number.T, p.T), k)
    if best is None or shape is None:
        raise ValueError("no images to search")
    return _with_windows(layer, best, width, layer_rf(model, layer, shape))


def _merge(best: Best | None, batch: Best, k: int) -> Best:
    """Recipe step 3: the running top-``k`` of each channel with one batch's (C, B) candidates
    merged in; a stable sort, so ties go to the earlier image."""
    if best is not None:
        batch = tuple(torch.cat([old, new], dim=1) for old, new in zip(best, batch, strict=True))
    order = batch[0].sort(dim=1, descending=True, stable=True).indices[:, :k]
    return tuple(t.gather(1, order) for t in batch)  # type: ignore[return-value]


def _with_windows(layer: str, best: Best, width: int, rf: RF) -> TopK:
    """Recipe step 4: the TopK, each maximum's flat position as (row, column) in the layer's
    output of ``width`` columns and as its receptive-field window in the input."""
    values, indices, positions = best
    rows, cols = positions // width, positions % width
    windows = torch.stack([*_windows(rf[0], rows), *_windows(rf[1], cols)], dim=-1)
    return TopK(
        layer=layer,
        values=values.cpu(),
        indices=indices.cpu(),
        positions=torch.stack([rows, cols], dim=-1).cpu(),
        windows=windows.cpu(),
        rf=rf,
    )


def _windows(rf: object, index: Tensor) -> tuple[Tensor, Tensor]:
    """``ReceptiveField.window`` for a tensor of indices: (lo, hi) tensors."""
    lo = [rf.window(int(i))[0] for i in index.flatten().tolist()]  # type: ignore[attr-defined]
    lo_t = torch.tensor(lo, dtype=torch.long).view(index.shape)
    return lo_t, lo_t + rf.size  # type: ignore[attr-defined]


def crop_window(image: Tensor, window: Tensor | tuple[int, ...], fill: float = 0.5) -> Tensor:
    """The ``(y0, y1, x0, x1)`` window of ``image`` (C, H, W); outside the image: ``fill``."""
    y0, y1, x0, x1 = (int(v) for v in window)
    c, h, w = image.shape
    patch = torch.full((c, y1 - y0, x1 - x0), fill, dtype=image.dtype)
    ty0, ty1, tx0, tx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if ty1 > ty0 and tx1 > tx0:
        patch[:, ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] = image[:, ty0:ty1, tx0:tx1]
    return patch
