"""Look inside a network: a layer report that shows the arithmetic, and a translation check.

``summary(model, (3, 50, 70))`` runs one forward pass with hooks on the leaf modules (and on
the blocks that hold parameters of their own, such as a ViT's class token or a ConvNeXt layer
scale) and returns one row per call. ``equivariance(module, x)`` measures how far a module is
from commuting with a one-pixel shift.

Conventions of the rows:

* ``output_shape`` leaves the batch out: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors.
* ``params`` counts the module's own parameters (children excluded); ``formula`` shows them
  with the numbers filled in: ``Cout x (Cin/groups x KH x KW + 1)`` for a convolution
  (``10x(3x3x3+1) = 280``), ``out x (in + 1)`` for a fully connected layer
  (``4x(1760+1) = 7,044``), the parameter shapes otherwise (batch norm: ``2x64 = 128``);
  ``""`` for layers without parameters.
* ``rf`` and ``jump``: receptive field side and jump in input pixels, height direction (the
  first spatial dimension), by the recurrence of :mod:`antlers.conv.arithmetic`. They are
  tracked per tensor: conv, max and average pooling apply the recurrence; ``Linear``,
  transposed convolutions and any other module that changes the spatial size (flatten,
  adaptive pooling, upsampling) give ``None``; any other module that keeps the spatial size
  (activations, batch norm, dropout, LRN) is taken as pointwise and passes the field through.
  A tensor made by an operation outside a module (a residual ``a + b``, ``torch.cat``, and so
  the output of a block) gets the largest field, with its jump, among the tensors seen so far
  with the same spatial size: exact for the usual residual and skip connections (the field of
  a merge is the largest of its branches), an under-estimate when the model calls functional
  convolutions or pooling (``F.conv2d``), which hooks cannot see; ``None`` when no tensor of
  that size was seen.
* ``macs``: multiply-accumulates per sample: ``Cout x Hout x Wout x Cin/groups x KH x KW`` for a
  convolution, ``in x out`` for a fully connected layer (per position), 0 for the rest.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from antlers.conv.arithmetic import ReceptiveField, output_size, receptive_field

__all__ = ["ShapeError", "Summary", "equivariance", "summary"]

RF = tuple[ReceptiveField, ...]  # one receptive field per spatial dimension
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_DIM_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
_KEYS = ("name", "type", "output_shape", "params", "formula", "rf", "jump", "macs")
_TITLES = {"name": "layer", "output_shape": "output shape", "macs": "MACs"}  # others: the key
_NUMERIC = {"params", "rf", "jump", "macs"}


class ShapeError(ValueError):
    """A forward pass broke on a shape; the message names the layer and shows the arithmetic."""


@dataclass(repr=False)
class Summary:
    """The layer report of :func:`summary`.

    Attributes:
        rows: one dict per module call, in the order the calls end, with keys ``name, type,
            output_shape, params, formula, rf, jump, macs`` (see the module docstring).
        input_shape: the ``(C, H, W)`` the model was run on, without the batch.
        total_params: parameters of the whole model, each counted once (the sum of the rows'
            ``params`` unless a module is called twice, or never, like the ``out_proj`` that
            ``nn.MultiheadAttention`` uses through its weights).
        trainable_params: those of them with ``requires_grad``.
    """

    rows: list[dict[str, Any]]
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates per sample, all rows together."""
        return sum(row["macs"] for row in self.rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as new dicts (changing them leaves the summary as it is)."""
        return [dict(row) for row in self.rows]

    def footer(self) -> str:
        return (
            f"input {_fmt(self.input_shape)}: {self.total_params:,} parameters "
            f"({self.trainable_params:,} trainable), {self.total_macs:,} MACs per sample"
        )

    def __str__(self) -> str:
        return f"{_table(self.rows)}\n{self.footer()}"

    def __repr__(self) -> str:
        return f"Summary({len(self.rows)} layers, {self.footer()})"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{_TITLES.get(key, key)}</th>" for key in _KEYS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row)) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{html.escape(self.footer())}</caption>"
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
) -> Summary:
    """Run ``model`` once on zeros of shape ``(batch_size, *input_shape)`` and report each layer.

    The model runs in eval mode under ``torch.no_grad()`` (so batch-norm statistics do not
    move) and is given back in the modes it had. It must already live on ``device``; the input
    takes the dtype of its first floating parameter.

    Raises:
        ShapeError: when the forward pass raises a RuntimeError; the message names the first
            layer that broke, the shape it received, the arithmetic, and the layers that ran.
        ValueError: for an invalid ``input_shape`` or ``batch_size``.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"input_shape must be ints >= 1, like (3, 50, 70), got {input_shape!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size}")
    x = torch.zeros((batch_size, *shape), dtype=_dtype(model), device=device)
    tracer = _Tracer(model)
    tracer.remember(x, _input_rf(x))
    try:
        with torch.no_grad(), _eval_mode(model):
            model(x)
    except RuntimeError as err:
        raise ShapeError(_explain(model, tracer, err)) from None
    finally:
        tracer.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(tracer.rows, shape, total, trainable)


def equivariance(module: nn.Module, x: Tensor, shift: tuple[int, int] = (0, 1)) -> float:
    """Translation-equivariance error: ``max |f(shift(x)) - shift(f(x))|`` away from the borders.

    ``shift((dy, dx))`` moves the content of the last two dimensions by ``dy`` rows down and
    ``dx`` columns right, filling with zeros: ``shift(t)[..., i, j] = t[..., i - dy, j - dx]``.
    The same pixel shift is applied to the input ``x`` (``(N, C, H, W)`` or ``(C, H, W)``) and to
    the output ``f(x)`` (``(N, C', H', W')``), index for index.

    Which outputs are compared: output unit ``i`` (per dimension) sees the input window
    ``[lo_i, lo_i + r)`` given by its receptive field (side ``r``, jump ``j``, padding included:
    a valid convolution's unit ``i`` sees the window starting at ``i``). ``f(shift(x))[i]`` is
    compared with ``shift(f(x))[i] = f(x)[i - d]``; unit ``i`` is kept when

    1. its window lies in ``[max(0, d), min(H, H + d))``, where ``shift(x)`` holds moved content
       (no fill, no padding, nothing pushed out),
    2. the window of unit ``i - d`` lies in ``[0, H)`` (no padding in ``f(x)[i - d]``), and
    3. ``0 <= i - d < H'``.

    With jump 1 (stride-1 layers, any padding, pointwise layers between) both sides then see
    the same pixels, so the result is 0 up to rounding. With jump ``j > 1`` (a stride-2 layer, a
    pooling) unit ``i - d`` sees pixels ``d x j`` away instead of ``d``: the content moved by
    ``d / j`` of a unit, not by ``d`` units, and the result is not 0.

    The module runs in eval mode under ``torch.no_grad()`` and is given back in its modes.

    Raises:
        ValueError: if ``x`` is not 3-d or 4-d, the shift is not smaller than the image, the
            output is not ``(N, C', H', W')`` with a known receptive field (no flatten, linear
            or adaptive pooling), or no output unit is clear of the borders.
    """
    if x.dim() not in (3, 4):
        raise ValueError(f"x must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    batch = x if x.dim() == 4 else x.unsqueeze(0)
    dy, dx = shift
    height, width = batch.shape[-2:]
    if abs(dy) >= height or abs(dx) >= width:
        raise ValueError(f"shift {shift} must be smaller than the image {height}x{width}")
    with torch.no_grad(), _eval_mode(module):
        y, rf = _forward_with_rf(module, batch)
        y_of_shifted = module(_shift(batch, (dy, dx)))
    if y.dim() != 4 or rf is None or len(rf) != 2:
        raise ValueError(
            "equivariance needs a module whose output is a feature map (N, C, H, W) with a "
            f"known receptive field (convolutions, pooling, pointwise layers); got output shape "
            f"{tuple(y.shape)}"
        )
    rows = _clear_of_borders(rf[0], height, y.shape[-2], dy)
    cols = _clear_of_borders(rf[1], width, y.shape[-1], dx)
    if not rows or not cols:
        raise ValueError(
            f"no output unit is clear of the borders: input {height}x{width}, receptive field "
            f"{rf[0].size}x{rf[1].size}, shift {shift}; use a larger input"
        )
    diff = y_of_shifted - _shift(y, (dy, dx))
    index = partial(torch.tensor, device=diff.device)
    diff = diff.index_select(-2, index(rows)).index_select(-1, index(cols))
    return float(diff.abs().max())


def _shift(t: Tensor, shift: tuple[int, int]) -> Tensor:
    """``out[..., i, j] = t[..., i - dy, j - dx]`` where that exists, 0 elsewhere."""
    dy, dx = shift
    height, width = t.shape[-2:]
    out = torch.zeros_like(t)
    out[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = t[
        ..., max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0)
    ]
    return out


def _clear_of_borders(rf: ReceptiveField, n_in: int, n_out: int, d: int) -> list[int]:
    """Output indices kept by rules 1-3 of :func:`equivariance`, along one dimension."""
    keep = []
    for i in range(n_out):
        lo, hi = rf.window(i)
        lo_before, hi_before = rf.window(i - d)
        if (
            max(0, d) <= lo
            and hi <= min(n_in, n_in + d)
            and lo_before >= 0
            and hi_before <= n_in
            and 0 <= i - d < n_out
        ):
            keep.append(i)
    return keep


def _forward_with_rf(module: nn.Module, x: Tensor) -> tuple[Tensor, RF | None]:
    """``module(x)`` and the receptive field of its output (``None`` if not a feature map)."""
    tracer = _Tracer(module)
    tracer.remember(x, _input_rf(x))
    try:
        y = module(x)
    finally:
        tracer.remove()
    if not isinstance(y, Tensor):
        raise ValueError(f"equivariance needs a module that returns a tensor, got {type(y)}")
    return y, tracer.rf_of(y)


class _Tracer:
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
            if _is_leaf(module) or next(module.parameters(recurse=False), None) is not None:
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
        x = _first_tensor(args)
        self.running.append((name, module, tuple(x.shape[1:]) if x is not None else ()))

    def _leave(self, name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x, y = _first_tensor(args), _first_tensor(output)
        rf = None
        if y is not None and not _is_leaf(module):  # a block: its output was made inside it
            rf = self.rf_of(y)
        elif x is not None and y is not None:
            rf = _next_rf(module, self.rf_of(x), x, y)
            self.remember(y, rf)
        out_shape = tuple(y.shape[1:]) if y is not None else ()
        params = sum(p.numel() for p in module.parameters(recurse=False))
        self.rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "output_shape": out_shape,
                "params": params,
                "formula": _formula(module, params),
                "rf": rf[0].size if rf else None,
                "jump": rf[0].jump if rf else None,
                "macs": _macs(module, x, out_shape),
            }
        )
        self.running.pop()


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _next_rf(module: nn.Module, rf: RF | None, x: Tensor, y: Tensor) -> RF | None:
    """The receptive field of ``module``'s output ``y`` given that of its input ``x``."""
    if rf is None or isinstance(module, (nn.Linear, *_TRANSPOSED)) or x.dim() < 3:
        return None
    windows = _windows(module, x.dim() - 2)
    if windows is not None:
        return tuple(receptive_field(r, *window) for r, window in zip(rf, windows, strict=True))
    if y.dim() == x.dim() and y.shape[2:] == x.shape[2:]:
        return rf
    return None


def _windows(module: nn.Module, n_dims: int) -> list[tuple[int, ...]] | None:
    """``(kernel, stride, padding, dilation)`` per spatial dim of a conv or pool, else None.

    None too when the module's kernel does not have ``n_dims`` dimensions (unbatched input).
    """
    if isinstance(module, _CONVS):
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


def _formula(module: nn.Module, params: int) -> str:
    """The parameter count with its factors, e.g. ``10x(3x3x3+1) = 280``; ``""`` if none."""
    if params == 0:
        return ""
    if isinstance(module, _CONVS):  # weight (Cout, Cin/groups, KH, KW)
        factors = "x".join(map(str, module.weight.shape[1:]))
        body = f"({factors}+1)" if module.bias is not None else factors
        return f"{module.out_channels}x{body} = {params:,}"
    if isinstance(module, _TRANSPOSED):  # weight (Cin, Cout/groups, KH, KW)
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


def _macs(module: nn.Module, x: Tensor | None, out_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per sample of a conv, transposed conv or linear layer; 0 otherwise."""
    if isinstance(module, _CONVS):
        return math.prod(out_shape) * math.prod(module.weight.shape[1:])
    if isinstance(module, _TRANSPOSED) and x is not None:
        return math.prod(x.shape[1:]) * math.prod(module.weight.shape[1:])
    if isinstance(module, nn.Linear):
        return math.prod(out_shape) * module.in_features
    return 0


def _explain(model: nn.Module, tracer: _Tracer, err: RuntimeError) -> str:
    """The ShapeError message: which layer broke, on what, why, and the layers that ran."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    rows = tracer.rows
    if tracer.running:
        name, module, shape = tracer.running[-1]
        lines = [
            f"{type(model).__name__} breaks at layer {name}: {module!r}",
            f"  {name} receives {_fmt(shape)} (without the batch dimension)",
            f"  {_diagnose(name, module, shape, rows, reason)}",
        ]
    else:
        after = f"after layer {rows[-1]['name']}" if rows else "before its first layer"
        lines = [f"{type(model).__name__} breaks {after}, outside any layer: {reason}"]
    lines.append("layers that ran:" if rows else "no layer ran.")
    if rows:
        lines.append(_table(rows))
    return "\n".join(lines)


def _diagnose(
    name: str, module: nn.Module, shape: tuple[int, ...], rows: list[dict[str, Any]], reason: str
) -> str:
    """The arithmetic of why ``module`` cannot take ``shape`` (batch left out)."""
    if isinstance(module, nn.Linear) and shape and shape[-1] != module.in_features:
        n = shape[-1]
        return (
            f"{name} expects {module.in_features} input features but receives {n}"
            f"{_flattened_from(rows, n)}"
        )
    if isinstance(module, _CONVS + _TRANSPOSED):
        n_dims = len(module.kernel_size)
        if len(shape) != n_dims + 1:
            return f"{name} expects a {n_dims + 1}-d input (C, ...) but receives {_fmt(shape)}"
        if shape[0] != module.in_channels:
            return (
                f"{name} expects {module.in_channels} input channels but receives {shape[0]} "
                f"(input {_fmt(shape)})"
            )
    windows = _windows(module, len(shape) - 1) if len(shape) > 1 else None
    if windows is not None:
        for dim, n, (k, s, p, d) in zip(_DIM_NAMES[len(windows)], shape[1:], windows, strict=True):
            try:
                output_size(n, k, s, p, d)
            except ValueError as err:
                kernel = "x".join(str(w[0]) for w in windows)
                return f"{name} cannot slide its {kernel} kernel over {_fmt(shape)}: {dim}: {err}"
    return f"{name} raised: {reason}"


def _flattened_from(rows: list[dict[str, Any]], n: int) -> str:
    """`` = 10x12x16 (the flattened output of pool2)``: the last map of ``n`` values, or ``""``."""
    for row in reversed(rows):
        shape = row["output_shape"]
        if len(shape) > 1 and math.prod(shape) == n:
            return f" = {_fmt(shape)} (the flattened output of {row['name']})"
    return ""


def _table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table with a header; numbers right-aligned."""
    lines = [[_TITLES.get(key, key) for key in _KEYS], *(_cells(row) for row in rows)]
    widths = [max(len(line[c]) for line in lines) for c in range(len(_KEYS))]
    text = []
    for line in lines:
        cells = [
            cell.rjust(width) if key in _NUMERIC else cell.ljust(width)
            for key, cell, width in zip(_KEYS, line, widths, strict=True)
        ]
        text.append("  ".join(cells).rstrip())
    text.insert(1, "-" * max(len(t) for t in text))
    return "\n".join(text)


def _cells(row: dict[str, Any]) -> list[str]:
    """One row's cells as strings: shapes as ``10x48x68``, counts with thousands separators."""
    cells = {**row, "output_shape": _fmt(row["output_shape"])}
    cells.update({key: f"{row[key]:,}" for key in ("params", "macs")})
    return ["-" if cells[key] is None else str(cells[key]) for key in _KEYS]


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "scalar"


def _first_tensor(value: Any) -> Tensor | None:
    """``value`` if a tensor, else the first tensor in a tuple/list, else None."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, tuple | list):
        return next((v for v in value if isinstance(v, Tensor)), None)
    return None


def _input_rf(x: Tensor) -> RF:
    """A pixel sees itself: side 1, jump 1, centre 0.5, for each spatial dim of ``(N, C, ...)``."""
    return tuple(ReceptiveField(size=1, jump=1, start=0.5) for _ in x.shape[2:])


def _dtype(model: nn.Module) -> torch.dtype:
    floating = (p.dtype for p in model.parameters() if p.is_floating_point())
    return next(floating, torch.get_default_dtype())


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode; give every submodule back its own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
