"""The lecture's worked examples, as text: what ``antlers conv`` and ``antlers params`` print.

NumPy only. The numbers come from the functions of :mod:`antlers.conv`, never typed in by hand.
"""

from __future__ import annotations

import numpy as np

from antlers.conv import arithmetic
from antlers.conv.kernels import describe_element, get_kernel, lecture_image
from antlers.conv.ops import conv2d

__all__ = ["edge_detector_text", "format_matrix", "params_text"]


def format_matrix(a: np.ndarray, width: int | None = None) -> str:
    """A 2-D array as aligned rows of numbers (integers without a decimal point)."""
    if a.ndim != 2:
        raise ValueError(f"format_matrix takes a 2-D array, got shape {a.shape}")
    cells = [[_number(v) for v in row] for row in a]
    width = width or max(len(c) for row in cells for c in row)
    return "\n".join("  " + " ".join(c.rjust(width) for c in row) for row in cells)


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def edge_detector_text(i: int = 1, j: int = 2, kernel: str = "vertical_line") -> str:
    """The lecture's edge detector: the 5x6 image, the 3x3 kernel, the 3x4 output, one element.

    Element (i, j) (0-indexed) is written out as the dot product of the kernel with the window
    ``x[i:i+3, j:j+3]``.
    """
    x, w = lecture_image(), get_kernel(kernel)
    out = conv2d(x, w)
    (h, wd), (kh, kw) = x.shape, w.shape
    lines = [
        f"input {h}x{wd} (a vertical line in column 3):",
        format_matrix(x),
        f"kernel {kh}x{kw} ({kernel}):",
        format_matrix(w),
        f"output {out.shape[0]}x{out.shape[1]} = ({h}-{kh}+1)x({wd}-{kw}+1):",
        format_matrix(out),
        f"element ({i}, {j}) = kernel . input[{i}:{i + kh}, {j}:{j + kw}]:",
        "  " + describe_element(x, w, i, j),
    ]
    return "\n".join(lines)


def params_text(height: int = 5, width: int = 6, k: int = 3) -> str:
    """Parameters of a k x k convolution versus a fully connected layer with the same shapes.

    With the lecture's 5x6 input and 3x3 kernel: 10 parameters against 372.
    """
    oh, ow = arithmetic.output_size(height, k), arithmetic.output_size(width, k)
    n_in, n_out = height * width, oh * ow
    conv = arithmetic.conv_params(1, 1, k)
    fc = arithmetic.linear_params(n_in, n_out)
    return "\n".join(
        [
            f"input {height}x{width} = {n_in} values -> output {oh}x{ow} = {n_out} values",
            f"convolution {k}x{k} + bias: 1x(1x{k}x{k}+1) = {conv} parameters",
            f"fully connected {n_in} -> {n_out}: {n_out}x({n_in}+1) = {fc} parameters",
            f"the fully connected layer needs {fc / conv:.1f}x as many: every output sees "
            f"every input (no locality) with its own weights (no sharing)",
        ]
    )
