"""The convolution from its definition: explicit loops, written to be read. The oracle.

Conventions (the lecture's, and PyTorch's ``torch.nn.functional.conv2d``):

* ``x`` has shape ``(N, Cin, H, W)``, the kernel tensor ``w`` has shape ``(Cout, Cin, KH, KW)``,
  the bias ``b`` has shape ``(Cout,)`` and the output has shape ``(N, Cout, Hout, Wout)`` with
  ``Hout = floor((H + 2*PH - KH) / SH) + 1`` (likewise for the width).
* A 2-D ``x`` of shape ``(H, W)`` with a 2-D kernel ``(KH, KW)`` is the lecture's single-channel
  case: the result is 2-D, ``(Hout, Wout)``.
* Zero padding; cross-correlation, as in PyTorch: the kernel is *not* flipped.
* Element ``(i, j)`` of output channel ``co`` is the dot product of kernel ``w[co]`` with the
  window ``x_pad[:, i*SH : i*SH+KH, j*SW : j*SW+KW]`` of the zero-padded input (0-indexed),
  plus the bias ``b[co]``.

This module also holds the shape rules that ``ops.py`` reuses: :func:`conv_geometry` checks the
arguments and raises ValueError with the arithmetic when they do not fit together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from antlers.conv.arithmetic import output_size, pair

__all__ = [
    "ConvArgs",
    "ConvGeometry",
    "as_batched",
    "conv2d_naive",
    "conv_geometry",
    "conv_result_dtype",
    "prepare_conv",
]


@dataclass(frozen=True)
class ConvGeometry:
    """Every size of one 2-D convolution (batched form; see the module docstring)."""

    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    h_out: int
    w_out: int


def as_batched(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return ``(x4, w4, was_2d)``: the 2-D lecture case becomes ``(1, 1, H, W)``, ``(1, 1, K, K)``.

    Raises ValueError unless ``x`` and ``w`` are both 2-D or both 4-D.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim == 2 and w.ndim == 2:
        return x[None, None], w[None, None], True
    if x.ndim == 4 and w.ndim == 4:
        return x, w, False
    raise ValueError(
        "conv2d takes x (N, Cin, H, W) with w (Cout, Cin, KH, KW), or x (H, W) with w (KH, KW); "
        f"got x.ndim={x.ndim} (shape {x.shape}) and w.ndim={w.ndim} (shape {w.shape})"
    )


def conv_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> ConvGeometry:
    """Check 4-D shapes, stride and padding; return the geometry. ValueError shows what is wrong."""
    n, c_in, h, w = x_shape
    c_out, c_in_w, kh, kw = w_shape
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    if c_in != c_in_w:
        raise ValueError(
            f"channel mismatch: input has {c_in} channels, kernel expects {c_in_w} (w.shape[1])"
        )
    if b_shape is not None and tuple(b_shape) != (c_out,):
        raise ValueError(
            f"bias must have shape (Cout,) = ({c_out},), one value per output channel "
            f"(w.shape[0]); got shape {tuple(b_shape)}"
        )
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel must be at least 1x1, got {kh}x{kw}")
    h_out = output_size(h, kh, sh, ph)
    w_out = output_size(w, kw, sw, pw)
    return ConvGeometry(n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, h_out, w_out)


def conv_result_dtype(*arrays: np.ndarray) -> np.dtype:
    """The float dtype of a result: float32 stays float32, float64 or integers give float64."""
    return np.result_type(*[a.dtype for a in arrays], np.float32)


@dataclass(frozen=True)
class ConvArgs:
    """Checked convolution arguments in batched form (``was_2d``: the lecture's 2-D case)."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    geometry: ConvGeometry
    was_2d: bool
    dtype: np.dtype


def prepare_conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int],
) -> ConvArgs:
    """Batch the 2-D case, check every shape, and pick the result dtype (see the module docstring).

    In the 2-D case the bias may be a scalar or have shape ``(1,)``.
    """
    x4, w4, was_2d = as_batched(x, w)
    b1 = None if b is None else np.asarray(b)
    if was_2d and b1 is not None:
        if b1.size != 1:
            raise ValueError(f"a 2-D convolution takes a scalar bias, got shape {b1.shape}")
        b1 = b1.reshape(1)
    geometry = conv_geometry(x4.shape, w4.shape, None if b1 is None else b1.shape, stride, padding)
    dtype = conv_result_dtype(x4, w4) if b1 is None else conv_result_dtype(x4, w4, b1)
    return ConvArgs(x4, w4, b1, geometry, was_2d, dtype)


def conv2d_naive(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> np.ndarray:
    """2-D convolution by the loops of its definition (slow; for reading and for checking).

    x: ``(N, Cin, H, W)`` or ``(H, W)``; w: ``(Cout, Cin, KH, KW)`` or ``(KH, KW)``;
    b: ``(Cout,)`` or None. Returns ``(N, Cout, Hout, Wout)``, or ``(Hout, Wout)`` in the 2-D case.
    """
    args = prepare_conv(x, w, b, stride, padding)
    g = args.geometry
    bias = np.zeros(g.c_out) if args.b is None else args.b

    # Zero padding: a border of ph rows and pw columns of zeros on every side.
    x_pad = np.zeros((g.n, g.c_in, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=args.dtype)
    x_pad[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w] = args.x

    out = np.zeros((g.n, g.c_out, g.h_out, g.w_out), dtype=args.dtype)
    for n in range(g.n):  # every image
        for co in range(g.c_out):  # every output channel: one kernel of shape (Cin, KH, KW)
            kernel = args.w[co]
            for i in range(g.h_out):  # every output row
                for j in range(g.w_out):  # every output column
                    top, left = i * g.sh, j * g.sw
                    window = x_pad[n, :, top : top + g.kh, left : left + g.kw]
                    # The dot product of the kernel with the window it covers, plus the bias.
                    out[n, co, i, j] = np.sum(kernel * window) + bias[co]
    return out[0, 0] if args.was_2d else out
