"""Named classic 3x3 kernels, the lecture's toy image, and one output element written out.

Kernels are float64 arrays of shape ``(3, 3)``, applied as cross-correlation (no flip), as
:func:`antlers.conv.conv2d` does:

* ``vertical_line``: every row is ``[-1, 2, -1]``: responds to a one-pixel-wide vertical line
  (the lecture's detector), ``horizontal_line`` is its transpose;
* ``sobel_x`` / ``sobel_y``: image derivative across columns / rows (vertical / horizontal edges);
* ``laplacian``: sum of second derivatives, responds to spots and edges of any direction;
* ``box_blur``: mean of the 3x3 window; ``gaussian``: binomial weights ``[1, 2, 1]``
  outer ``[1, 2, 1]`` / 16.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KERNELS", "describe_element", "get_kernel", "lecture_image"]


def _kernel(rows: list[list[float]], scale: float = 1.0) -> np.ndarray:
    return np.array(rows, dtype=np.float64) * scale


# Shared by every caller: use get_kernel() for a copy that is safe to change.
KERNELS: dict[str, np.ndarray] = {
    "vertical_line": _kernel([[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]]),
    "horizontal_line": _kernel([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]]),
    "sobel_x": _kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": _kernel([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "laplacian": _kernel([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "box_blur": _kernel([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 1 / 9),
    "gaussian": _kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 1 / 16),
}


def get_kernel(name: str) -> np.ndarray:
    """A writable copy of the named kernel, shape ``(3, 3)``, float64.

    Raises ValueError listing the known names for an unknown ``name``.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; known kernels: {', '.join(sorted(KERNELS))}")
    return KERNELS[name].copy()


def lecture_image() -> np.ndarray:
    """The lecture's toy image: 5 rows, 6 columns of zeros with a vertical line of ones in column 3.

    Shape ``(5, 6)``, float64. With the ``vertical_line`` kernel, every row of the 3x4 output is
    ``[0, -3, 6, -3]``: the detector answers 6 where its centre column sits on the line.
    """
    image = np.zeros((5, 6))
    image[:, 3] = 1.0
    return image


def _number(value: float) -> str:
    """``2`` for 2.0, ``0`` for -0.0, else up to 4 significant digits."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.4g}"


def describe_element(x: np.ndarray, w: np.ndarray, i: int, j: int) -> str:
    """Output element ``(i, j)`` of ``conv2d(x, w)`` written out as a dot product.

    ``x`` is ``(H, W)`` and ``w`` is ``(K, K')`` (stride 1, no padding); the terms go row by row
    over the window ``x[i : i+K, j : j+K']``, kernel value first, e.g.
    ``"out[1, 2] = (-1)(0) + (2)(1) + (-1)(0) + ... = 6"``.
    Raises ValueError when ``(i, j)`` is outside the ``(H-K+1) x (W-K'+1)`` output.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if x.ndim != 2 or w.ndim != 2:
        raise ValueError(f"x and w must be 2-D, got shapes {x.shape} and {w.shape}")
    h_out, w_out = x.shape[0] - w.shape[0] + 1, x.shape[1] - w.shape[1] + 1
    if not (0 <= i < h_out and 0 <= j < w_out):
        raise ValueError(
            f"element ({i}, {j}) is outside the {h_out}x{w_out} output: "
            f"i must be in 0..{h_out - 1} and j in 0..{w_out - 1}"
        )
    window = x[i : i + w.shape[0], j : j + w.shape[1]]
    pairs = zip(w.ravel(), window.ravel(), strict=True)
    terms = [f"({_number(k)})({_number(v)})" for k, v in pairs]
    total = float(np.sum(w * window))
    return f"out[{i}, {j}] = {' + '.join(terms)} = {_number(total)}"
