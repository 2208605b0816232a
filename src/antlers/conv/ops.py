"""Vectorized convolution, pooling and ReLU, each backward rule beside its forward rule.

Shapes (as in PyTorch): images are ``(N, C, H, W)``; a conv kernel tensor is
``(Cout, Cin, KH, KW)``; ``stride``, ``padding`` and ``kernel_size`` are an int or a pair
``(h, w)``. ``conv2d`` also takes the lecture's single-channel case: ``x (H, W)`` with
``w (KH, KW)``. Each ``*_backward(grad_out, ...)`` takes the gradient of the loss with respect
to the forward's output and returns the gradient(s) with respect to its input(s), in their shapes.

How the convolution is made fast (im2col): every window the kernel visits is copied into a
column of ``cols`` of shape ``(N, Cin*KH*KW, Hout*Wout)``; the convolution is then the matrix
product ``w.reshape(Cout, Cin*KH*KW) @ cols`` (one GEMM per image, done by BLAS), which is
already laid out as ``(N, Cout, Hout*Wout)``. Backward: ``grad_w`` is a GEMM of ``grad_out``
against the same columns; ``grad_x`` is a GEMM back to columns, then col2im adds each column
entry back to the input pixel it came from (KH*KW strided adds, one per kernel offset).
The batch goes through in blocks of a few images, so that the columns stay in the CPU cache.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from antlers.conv.arithmetic import output_size, pair
from antlers.conv.reference import ConvGeometry, prepare_conv

IntPair = int | tuple[int, int]  # a size for both axes, or (height, width)

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "im2col",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
]


# ---------------------------------------------------------------------------- convolution

# Images go through im2col and the GEMM in blocks whose columns take about this many bytes, so
# that the columns are still in the CPU cache when the GEMM reads them (faster than building the
# columns of the whole batch at once, docs/experiments/cpu-layout.md).
BLOCK_BYTES = 2**21


def _blocks(g: ConvGeometry, dtype: np.dtype) -> tuple[list[slice], np.ndarray]:
    """Slices of the batch whose columns fit in about ``BLOCK_BYTES``, and a buffer for them."""
    per_image = g.c_in * g.kh * g.kw * g.h_out * g.w_out
    size = max(1, min(g.n, BLOCK_BYTES // (per_image * dtype.itemsize)))
    blocks = [slice(start, min(start + size, g.n)) for start in range(0, g.n, size)]
    return blocks, np.empty(size * per_image, dtype)


def im2col(x: np.ndarray, g: ConvGeometry, buffer: np.ndarray | None = None) -> np.ndarray:
    """Columns ``(B, Cin*KH*KW, Hout*Wout)`` of ``B`` images ``x (B, Cin, H, W)``.

    Column ``i*Wout + j`` is the window of output (i, j): its row ``(c*KH + u)*KW + v`` holds
    pixel ``x_pad[c, i*SH + u, j*SW + v]``, the order of ``w.reshape(Cout, -1)``. ``buffer``,
    if given, is a flat array of at least ``B*Cin*KH*KW*Hout*Wout`` elements to write into.
    """
    x_pad = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw))) if g.ph or g.pw else x
    windows = sliding_window_view(x_pad, (g.kh, g.kw), axis=(2, 3))[:, :, :: g.sh, :: g.sw]
    # windows: (B, Cin, Hout, Wout, KH, KW) view -> contiguous (B, Cin, KH, KW, Hout, Wout).
    shape = (x.shape[0], g.c_in, g.kh, g.kw, g.h_out, g.w_out)
    size = math.prod(shape)
    cols = np.empty(shape, x.dtype) if buffer is None else buffer[:size].reshape(shape)
    np.copyto(cols, windows.transpose(0, 1, 4, 5, 2, 3))
    return cols.reshape(x.shape[0], g.c_in * g.kh * g.kw, g.h_out * g.w_out)


def col2im(cols: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """The adjoint of :func:`im2col`: add each column entry back to its pixel -> (B, Cin, H, W)."""
    cols6 = cols.reshape(-1, g.c_in, g.kh, g.kw, g.h_out, g.w_out)
    x_pad = np.zeros((len(cols6), g.c_in, g.h + 2 * g.ph, g.w + 2 * g.pw), dtype=cols.dtype)
    for u in range(g.kh):
        for v in range(g.kw):
            rows = slice(u, u + g.sh * g.h_out, g.sh)
            columns = slice(v, v + g.sw * g.w_out, g.sw)
            x_pad[:, :, rows, columns] += cols6[:, :, u, v]
    return x_pad[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w]


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """2-D convolution (cross-correlation, zero padding), as ``torch.nn.functional.conv2d``.

    x: ``(N, Cin, H, W)``, w: ``(Cout, Cin, KH, KW)``, b: ``(Cout,)`` or None
    -> ``(N, Cout, Hout, Wout)``; or x ``(H, W)`` with w ``(KH, KW)`` -> ``(Hout, Wout)``.
    The dtype is kept: float32 in, float32 out (float64 if any argument is float64).
    Raises ValueError, with the arithmetic, when the shapes do not fit together.
    """
    args = prepare_conv(x, w, b, stride, padding)
    g = args.geometry
    x4 = args.x.astype(args.dtype, copy=False)
    w2 = args.w.reshape(g.c_out, -1).astype(args.dtype, copy=False)
    out = np.empty((g.n, g.c_out, g.h_out * g.w_out), dtype=args.dtype)
    blocks, buffer = _blocks(g, args.dtype)
    for block in blocks:
        cols = im2col(x4[block], g, buffer)  # (B, Cin*KH*KW, Hout*Wout)
        np.matmul(w2, cols, out=out[block])  # (Cout, Cin*KH*KW) @ (B, ...) -> (B, Cout, L)
        if args.b is not None:
            out[block] += args.b.astype(args.dtype, copy=False)[:, None]
    out = out.reshape(g.n, g.c_out, g.h_out, g.w_out)
    return out[0, 0] if args.was_2d else out


def conv2d_backward(
    grad_out: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d`: ``(grad_x, grad_w, grad_b)``, shaped like x, w and (Cout,).

    With ``out_n = w2 @ cols_n`` for image n: ``grad_w2 = sum_n grad_out_n @ cols_n^T``,
    ``grad_cols_n = w2^T @ grad_out_n`` (then col2im), ``grad_b = sum of grad_out over n, i, j``.
    In the 2-D case ``grad_b`` has shape ``(1,)``.
    """
    args = prepare_conv(x, w, None, stride, padding)
    g = args.geometry
    dtype = np.result_type(args.dtype, np.asarray(grad_out).dtype)
    g4 = np.asarray(grad_out, dtype=dtype)
    g4 = g4[None, None] if args.was_2d else g4
    if g4.shape != (g.n, g.c_out, g.h_out, g.w_out):
        raise ValueError(
            f"grad_out must have the output's shape {(g.n, g.c_out, g.h_out, g.w_out)}, "
            f"got {g4.shape}"
        )
    g3 = np.ascontiguousarray(g4).reshape(g.n, g.c_out, g.h_out * g.w_out)
    x4 = args.x.astype(dtype, copy=False)
    w2 = args.w.reshape(g.c_out, -1).astype(dtype, copy=False)

    grad_x = np.empty((g.n, g.c_in, g.h, g.w), dtype=dtype)
    grad_w2 = np.zeros_like(w2)
    blocks, buffer = _blocks(g, dtype)
    for block in blocks:
        cols = im2col(x4[block], g, buffer)  # (B, Cin*KH*KW, Hout*Wout)
        grad_w2 += np.matmul(g3[block], cols.transpose(0, 2, 1)).sum(axis=0)
        grad_cols = np.matmul(w2.T, g3[block], out=cols)  # reuses the columns' buffer
        grad_x[block] = col2im(grad_cols, g)
    grad_w = grad_w2.reshape(args.w.shape)
    grad_b = g3.sum(axis=(0, 2))
    if args.was_2d:
        return grad_x[0, 0], grad_w[0, 0], grad_b
    return grad_x, grad_w, grad_b


# ---------------------------------------------------------------------------- pooling


def _pool_windows(
    x: np.ndarray, kernel_size: IntPair, stride: IntPair | None
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Windows view ``(N, C, Hout, Wout, KH, KW)`` of x (N, C, H, W): floor mode, no padding."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"pooling takes x of shape (N, C, H, W), got ndim={x.ndim} ({x.shape})")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kh}x{kw}")
    output_size(x.shape[2], kh, sh)  # raises ValueError with the arithmetic if it does not fit
    output_size(x.shape[3], kw, sw)
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return windows, (kh, kw), (sh, sw)


def _check_grad(grad_out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    grad_out = np.asarray(grad_out)
    if grad_out.shape != shape:
        raise ValueError(f"grad_out must have the output's shape {shape}, got {grad_out.shape}")
    return grad_out


def max_pool2d(
    x: np.ndarray, kernel_size: IntPair = 2, stride: IntPair | None = None
) -> np.ndarray:
    """Max over each ``KH x KW`` window: ``(N, C, H, W) -> (N, C, Hout, Wout)``.

    ``stride`` defaults to ``kernel_size``; windows that would run past the edge are dropped
    (floor mode, as ``torch.nn.functional.max_pool2d``).
    """
    windows, _, _ = _pool_windows(x, kernel_size, stride)
    return windows.max(axis=(4, 5))


def max_pool2d_backward(
    grad_out: np.ndarray, x: np.ndarray, kernel_size: IntPair = 2, stride: IntPair | None = None
) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its maximum, shape of ``x``.

    Ties go to the first maximum in row-major window order, as in PyTorch. Overlapping windows
    (stride < kernel) add up.
    """
    windows, (kh, kw), (sh, sw) = _pool_windows(x, kernel_size, stride)
    grad_out = _check_grad(grad_out, windows.shape[:4])  # (N, C, Hout, Wout)
    h_out, w_out = grad_out.shape[2:]
    argmax = windows.reshape(*grad_out.shape, kh * kw).argmax(axis=4)
    grad_x = np.zeros(np.shape(x), dtype=np.result_type(grad_out, np.asarray(x).dtype))
    for u in range(kh):
        for v in range(kw):
            routed = np.where(argmax == u * kw + v, grad_out, 0)
            grad_x[:, :, u : u + sh * h_out : sh, v : v + sw * w_out : sw] += routed
    return grad_x


def avg_pool2d(
    x: np.ndarray, kernel_size: IntPair = 2, stride: IntPair | None = None
) -> np.ndarray:
    """Mean over each ``KH x KW`` window: ``(N, C, H, W) -> (N, C, Hout, Wout)`` (floor mode)."""
    windows, _, _ = _pool_windows(x, kernel_size, stride)
    return windows.mean(axis=(4, 5))


def avg_pool2d_backward(
    grad_out: np.ndarray, x: np.ndarray, kernel_size: IntPair = 2, stride: IntPair | None = None
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window's gradient / (KH*KW) goes to all its pixels."""
    windows, (kh, kw), (sh, sw) = _pool_windows(x, kernel_size, stride)
    share = _check_grad(grad_out, windows.shape[:4]) / (kh * kw)  # (N, C, Hout, Wout)
    h_out, w_out = share.shape[2:]
    grad_x = np.zeros(np.shape(x), dtype=share.dtype)
    for u in range(kh):
        for v in range(kw):
            grad_x[:, :, u : u + sh * h_out : sh, v : v + sw * w_out : sw] += share
    return grad_x


# ---------------------------------------------------------------------------- ReLU


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise, any shape."""
    return np.maximum(x, 0)


def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu`: ``grad_out`` where ``x > 0``, else 0 (also at ``x == 0``)."""
    grad_out = _check_grad(grad_out, np.shape(x))
    return np.where(np.asarray(x) > 0, grad_out, 0)
