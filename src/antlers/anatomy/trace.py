"""Forward hooks that follow a network layer by layer: shapes, parameters, receptive fields.

``Tracer(model)`` hooks every module that holds parameters of its own or has no children; each
call adds a row (see :mod:`antlers.anatomy.table` for the row conventions) and remembers the
receptive field of its output tensor, so that :func:`~antlers.anatomy.table.summary` and
:func:`~antlers.anatomy.equivariance` share one implementation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from antlers.conv.arithmetic import ReceptiveField, receptive_field

__all__ = ["RF", "Tracer", "conv_windows", "eval_mode", "input_rf", "param_dtype"]

RF = tuple[ReceptiveField, ...]  # one receptive field per spatial dimension
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


class Tracer:
    """Hooks on every module that holds parameters of its own or has no children.

    Each call of such a module adds a row; its ``params`` are the module's own (children
    excluded), so the rows add up to the model's total when no module is called twice. The
    receptive field of every module output is remembered. ``running`` holds ``(name, module,
    input shape)`` of the modules entered and not yet left: after an exception its last entry is
    the innermost module that broke.
    """

    def __init__(self, model: nn.Module) -> None:
        self.rows: list[dict[str, Any]] = []
        self.running: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self._rfs: dict[int, tuple[Tensor, RF | None]] = {}  # id -> (tensor kept alive, rf)
        self._handles: list[Any] = []
        for name, module in model.named_modules():
            if is_leaf(module) or next(module.parameters(recurse=False), None) is not None:
                label = name or type(module).__name__
                self._handles.append(module.register_forward_pre_hook(partial(self._enter, label)))
                self._handles.append(module.register_forward_hook(partial(self._leave, label)))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def remember(self, t: Tensor, rf: RF | None) -> None:
        self._rfs[id(t)] = (t, rf)

    def rf_of(self, t: Tensor) -> RF | None:
        """The field of ``t``; for an unseen tensor the largest seen with its spatial size."""
        known = self._rfs.get(id(t))
        if known is not None and known[0] is t:
            return known[1]
        if t.dim() < 3:
            return None
        same_size = [rf for s, rf in self._rfs.values() if rf and s.shape[2:] == t.shape[2:]]
        return max(same_size, key=lambda rf: rf[0].size, default=None)

    def _enter(self, name: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        x = first_tensor(args)
        self.running.append((name, module, tuple(x.shape[1:]) if x is not None else ()))

    def _leave(self, name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x, y = first_tensor(args), first_tensor(output)
        rf = None
        if y is not None and not is_leaf(module):  # a block: its output was made inside it
            rf = self.rf_of(y)
        elif x is not None and y is not None:
            rf = next_rf(module, self.rf_of(x), x, y)
            self.remember(y, rf)
        out_shape = tuple(y.shape[1:]) if y is not None else ()
        params = sum(p.numel() for p in module.parameters(recurse=False))
        self.rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "output_shape": out_shape,
                "params": params,
                "formula": formula(module, params),
                "rf": rf[0].size if rf else None,
                "jump": rf[0].jump if rf else None,
                "macs": macs(module, x, out_shape),
            }
        )
        self.running.pop()


def is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def next_rf(module: nn.Module, rf: RF | None, x: Tensor, y: Tensor) -> RF | None:
    """The receptive field of ``module``'s output ``y`` given that of its input ``x``."""
    if rf is None or isinstance(module, (nn.Linear, *TRANSPOSED)) or x.dim() < 3:
        return None
    windows = conv_windows(module, x.dim() - 2)
    if windows is not None:
        return tuple(receptive_field(r, *window) for r, window in zip(rf, windows, strict=True))
    if y.dim() == x.dim() and y.shape[2:] == x.shape[2:]:
        return rf
    return None


def conv_windows(module: nn.Module, n_dims: int) -> list[tuple[int, ...]] | None:
    """``(kernel, stride, padding, dilation)`` per spatial dim of a conv or pool, else None.

    None too when the module's kernel does not have ``n_dims`` dimensions (unbatched input).
    """
    if isinstance(module, CONVS):
        kernel, dilation, padding = module.kernel_size, module.dilation, module.padding
        if isinstance(padding, str):  # "valid" or "same" (the extra pixel of even kernels right)
            same = padding == "same"
            padding = tuple(
                d * (k - 1) // 2 if same else 0 for k, d in zip(kernel, dilation, strict=True)
            )
        values = [kernel, module.stride, padding, dilation]
    elif isinstance(module, _POOLS):
        dilation = getattr(module, "dilation", 1)  # average pooling has none
        values = [module.kernel_size, module.stride, module.padding, dilation]
    else:
        return None
    per_dim = [_per_dim(v, n_dims) for v in values]
    if any(len(v) != n_dims for v in per_dim):
        return None
    return list(zip(*per_dim, strict=True))


def _per_dim(value: int | Sequence[int], n_dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (value,) * n_dims


def formula(module: nn.Module, params: int) -> str:
    """The parameter count with its factors, e.g. ``10x(3x3x3+1) = 280``; ``""`` if none."""
    if params == 0:
        return ""
    if isinstance(module, CONVS):  # weight (Cout, Cin/groups, KH, KW)
        factors = "x".join(map(str, module.weight.shape[1:]))
        body = f"({factors}+1)" if module.bias is not None else factors
        return f"{module.out_channels}x{body} = {params:,}"
    if isinstance(module, TRANSPOSED):  # weight (Cin, Cout/groups, KH, KW)
        factors = "x".join(map(str, module.weight.shape))
        bias = f"+{module.out_channels}" if module.bias is not None else ""
        return f"{factors}{bias} = {params:,}"
    if isinstance(module, nn.Linear):
        body = f"({module.in_features}+1)" if module.bias is not None else str(module.in_features)
        return f"{module.out_features}x{body} = {params:,}"
    shapes = Counter(tuple(p.shape) for p in module.parameters(recurse=False))
    terms = [
        (f"{count}x" if count > 1 else "") + ("x".join(map(str, shape)) or "1")
        for shape, count in shapes.items()
    ]
    return f"{' + '.join(terms)} = {params:,}"


def macs(module: nn.Module, x: Tensor | None, out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per sample of a conv, transposed conv or linear layer; 0 otherwise."""
    if isinstance(module, CONVS):
        return math.prod(out_shape) * math.prod(module.weight.shape[1:])
    if isinstance(module, TRANSPOSED) and x is not None:
        return math.prod(x.shape[1:]) * math.prod(module.weight.shape[1:])
    if isinstance(module, nn.Linear):
        return math.prod(out_shape) * module.in_features
    return 0


def first_tensor(value: Any) -> Tensor | None:
    """``value`` if a tensor, else the first tensor in a tuple/list, else None."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


def input_rf(x: Tensor) -> RF:
    """A pixel sees itself: side 1, jump 1, centre 0.5, for each spatial dim of ``(N, C, ...)``."""
    return tuple(ReceptiveField(size=1, jump=1, start=0.5) for _ in x.shape[2:])


def param_dtype(model: nn.Module) -> torch.dtype:
    floating = (p.dtype for p in model.parameters() if p.is_floating_point())
    return next(floating, torch.get_default_dtype())


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode; give every submodule back its own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
