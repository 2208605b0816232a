"""The layer report: ``summary(model, (3, 50, 70))`` shows the arithmetic of every layer.

It runs one forward pass with hooks on the leaf modules (and on the blocks that hold parameters
of their own, such as a ViT's class token or a ConvNeXt layer scale) and returns one row per call.
A forward pass that breaks on a shape raises :class:`ShapeError` naming the layer and the numbers.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from antlers.anatomy.trace import (
    CONVS,
    TRANSPOSED,
    Tracer,
    conv_windows,
    eval_mode,
    input_rf,
    param_dtype,
)
from antlers.conv.arithmetic import output_size

__all__ = ["ShapeError", "Summary", "summary"]

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
    x = torch.zeros((batch_size, *shape), dtype=param_dtype(model), device=device)
    tracer = Tracer(model)
    tracer.remember(x, input_rf(x))
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    except RuntimeError as err:
        raise ShapeError(_explain(model, tracer, err)) from None
    finally:
        tracer.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(tracer.rows, shape, total, trainable)


def _explain(model: nn.Module, tracer: Tracer, err: RuntimeError) -> str:
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
    if isinstance(module, CONVS + TRANSPOSED):
        n_dims = len(module.kernel_size)
        if len(shape) != n_dims + 1:
            return f"{name} expects a {n_dims + 1}-d input (C, ...) but receives {_fmt(shape)}"
        if shape[0] != module.in_channels:
            return (
                f"{name} expects {module.in_channels} input channels but receives {shape[0]} "
                f"(input {_fmt(shape)})"
            )
    windows = conv_windows(module, len(shape) - 1) if len(shape) > 1 else None
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
