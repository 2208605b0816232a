"""The arithmetic of convolutional layers: output sizes, parameter counts, receptive fields.

Conventions (as in the lecture and PyTorch):

* A K x K kernel sliding with stride S over an input of size N padded by P zeros on each side
  gives ``floor((N + 2P - K) / S) + 1`` outputs. With S=1, P=0 this is the lecture's N - K + 1.
* A conv layer with Cin input and Cout output channels and a K x K kernel has
  ``Cout x (Cin x K x K + 1)`` parameters (the +1 is the bias); a fully connected layer from
  ``n_in`` to ``n_out`` has ``n_out x (n_in + 1)``.
* Receptive fields follow the recurrence ``r_l = r_{l-1} + (k_l - 1) * j_{l-1}``,
  ``j_l = j_{l-1} * s_l`` and ``start_l = start_{l-1} + ((k_l - 1) / 2 - p_l) * j_{l-1}``
  with ``r_0 = 1, j_0 = 1, start_0 = 0.5``: ``r`` is the side of the input window one output
  unit sees, ``j`` the distance in input pixels between neighbouring units (the jump) and
  ``start`` the centre of the first unit's window in input pixel coordinates (pixel i covers
  [i, i+1)).

Every function here is pure Python: no NumPy, no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ReceptiveField",
    "conv_params",
    "linear_params",
    "output_size",
    "pair",
    "receptive_field",
    "receptive_fields",
]


def pair(value: int | tuple[int, int], name: str = "value") -> tuple[int, int]:
    """Return ``(h, w)`` from an int or a 2-tuple of ints; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")


def output_size(n: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of positions of a size-``k`` kernel over a size-``n`` input.

    ``floor((n + 2*padding - dilation*(k-1) - 1) / stride) + 1``; with ``dilation=1`` this is
    ``floor((n + 2*padding - k) / stride) + 1``.

    Raises ValueError, showing the arithmetic, when ``stride < 1``, ``padding < 0`` or the kernel
    is larger than the padded input.

    >>> output_size(6, 3)  # the lecture's 5x6 image, 3x3 kernel: 6 - 3 + 1
    4
    >>> output_size(227, 11, stride=4)  # AlexNet's first layer
    55
    """
    if k < 1:
        raise ValueError(f"kernel size must be >= 1, got {k}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got stride={stride}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got padding={padding}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got dilation={dilation}")
    span = dilation * (k - 1) + 1
    padded = n + 2 * padding
    if span > padded:
        raise ValueError(
            f"kernel larger than the padded input: kernel {span} > input {n} + 2x{padding} "
            f"padding = {padded}"
        )
    return (padded - span) // stride + 1


def conv_params(c_in: int, c_out: int, k: int | tuple[int, int], bias: bool = True) -> int:
    """Parameters of a conv layer: ``c_out x (c_in x kh x kw + 1)`` (without ``+ 1`` if no bias).

    >>> conv_params(1, 1, 3)  # the lecture's 3x3 kernel with its bias
    10
    >>> conv_params(3, 96, 11)  # AlexNet's first layer
    34944
    """
    kh, kw = pair(k, "k")
    return c_out * (c_in * kh * kw + int(bias))


def linear_params(n_in: int, n_out: int, bias: bool = True) -> int:
    """Parameters of a fully connected layer: ``n_out x (n_in + 1)``.

    >>> linear_params(30, 12)  # the lecture's 5x6 input to a 3x4 output, fully connected
    372
    """
    return n_out * (n_in + int(bias))


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit after a layer, in input pixels.

    size:  side of the input window a unit sees (r)
    jump:  distance in input pixels between neighbouring units (j, the product of the strides)
    start: centre of the first unit's window, in input pixel coordinates (pixel i is [i, i+1))
    """

    size: int
    jump: int
    start: float

    def window(self, index: int) -> tuple[int, int]:
        """Input pixel range ``[lo, hi)`` seen by unit ``index`` (may reach into the padding)."""
        centre = self.start + index * self.jump
        lo = round(centre - self.size / 2)
        return lo, lo + self.size


def receptive_field(
    previous: ReceptiveField, k: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> ReceptiveField:
    """One step of the receptive-field recurrence (see the module docstring)."""
    span = dilation * (k - 1) + 1
    return ReceptiveField(
        size=previous.size + (span - 1) * previous.jump,
        jump=previous.jump * stride,
        start=previous.start + ((span - 1) / 2 - padding) * previous.jump,
    )


def receptive_fields(layers: Iterable[tuple[int, int, int]]) -> list[ReceptiveField]:
    """Receptive field after each of ``layers``, given as ``(kernel, stride, padding)`` triples.

    >>> [rf.size for rf in receptive_fields([(3, 1, 0), (2, 2, 0), (3, 1, 0), (2, 2, 0)])]
    [3, 4, 8, 10]
    """
    rf = ReceptiveField(size=1, jump=1, start=0.5)
    out = []
    for k, s, p in layers:
        rf = receptive_field(rf, k, s, p)
        out.append(rf)
    return out
