"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

For a layer with activations ``A`` of shape ``(C, h, w)`` and the class score ``y^c`` (the
logit, before the softmax):

1. Eq. 1: the weight of channel ``k`` is the spatial mean of the gradient,
   ``alpha_k^c = 1/(h w) sum_ij d y^c / d A^k_ij``.
2. Eq. 2: ``L^c = ReLU(sum_k alpha_k^c A^k)``, an ``h x w`` map: only the evidence *for* c.
3. Upsample bilinearly to the input size and divide by the map's maximum (0..1 per image).

For a network ``conv -> global average pool -> Linear`` this is CAM (Zhou et al. 2016) up to a
constant: ``alpha_k^c = W[c, k] / (h w)``, which the tests use as the oracle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.anatomy.trace import eval_mode
from antlers.explain.layers import get_layer

__all__ = ["default_cam_layer", "grad_cam"]


def default_cam_layer(model: nn.Module, input_shape: tuple[int, ...], min_side: int = 2) -> str:
    """The last layer (in the order layers finish) whose output map has sides >= ``min_side``.

    E.g. ``pool2`` of ``lecture_cnn``, ``layer4`` of a ResNet: the deepest features that still
    say where (a larger ``min_side`` trades depth for a sharper map).
    """
    finished: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        m.register_forward_hook(
            lambda _m, _a, out, name=name: finished.append(
                (name, tuple(out.shape)) if isinstance(out, Tensor) else (name, ())
            )
        )
        for name, m in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    maps = [n for n, shape in finished if len(shape) == 4 and min(shape[2:]) >= min_side]
    if not maps:
        raise ValueError(f"no layer gives a (B, C, H, W) map of side >= {min_side} for Grad-CAM")
    return maps[-1]


def grad_cam(
    model: nn.Module,
    images: Tensor,
    target: int | Tensor | None = None,
    layer: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Grad-CAM maps (B, H, W) in [0, 1] for images (B, C, H, W), and the classes explained (B,).

    Args:
        target: the class to explain: an int for all images, a (B,) tensor, or None for each
            image's predicted class (the argmax of the logits).
        layer: a ``named_modules`` name; default :func:`default_cam_layer`.
    """
    name = layer or default_cam_layer(model, tuple(images.shape[1:]))
    module = get_layer(model, name)
    kept: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _args: object, output: Tensor) -> Tensor:
        kept["A"] = output
        return output.clone()  # the rest of the network works on a copy: in-place ops are safe

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.enable_grad():
            logits = model(images.float())
            if logits.dim() != 2:
                raise ValueError(f"the model gives {tuple(logits.shape)}, not (B, classes) logits")
            classes = _targets(target, logits)
            score = logits.gather(1, classes[:, None]).sum()
            (grads,) = torch.autograd.grad(score, kept["A"])
    finally:
        handle.remove()
    activations = kept["A"].detach()
    if activations.dim() != 4:
        raise ValueError(f"layer {name!r} gives {tuple(activations.shape)}, not (B, C, H, W)")
    alpha = grads.mean(dim=(2, 3), keepdim=True)  # eq. 1
    cam = F.relu((alpha * activations).sum(dim=1, keepdim=True))  # eq. 2
    cam = F.interpolate(cam, size=images.shape[2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)
    return cam / peak[:, None, None], classes


def _targets(target: int | Tensor | None, logits: Tensor) -> Tensor:
    n, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    classes = torch.as_tensor(target, device=logits.device).long().expand(n)
    if ((classes < 0) | (classes >= k)).any():
        raise ValueError(f"target class must be in 0..{k - 1}, got {target}")
    return classes
