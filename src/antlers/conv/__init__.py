"""The convolution from its definition, in NumPy alone (this package never imports torch).

* :func:`conv2d_naive`: the loops of the definition, the oracle (``reference.py``);
* :func:`conv2d` and friends: vectorized forward and backward rules (``ops.py``);
* :func:`output_size`, :func:`conv_params`, ...: the arithmetic of layers (``arithmetic.py``);
* :data:`KERNELS`: named classic kernels and the lecture's toy image (``kernels.py``);
* ``antlers.conv.numpy_cnn``: a whole CNN trained by the hand-written backward pass (imported on
  its own: it needs scikit-learn for the digits).

Shapes follow PyTorch: images ``(N, C, H, W)``, kernels ``(Cout, Cin, KH, KW)``.
"""

from __future__ import annotations

from antlers.conv.arithmetic import (
    ReceptiveField,
    conv_params,
    linear_params,
    output_size,
    receptive_field,
    receptive_fields,
)
from antlers.conv.kernels import KERNELS, describe_element, get_kernel, lecture_image
from antlers.conv.ops import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)
from antlers.conv.reference import conv2d_naive

__all__ = [
    "KERNELS",
    "ReceptiveField",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_naive",
    "conv_params",
    "describe_element",
    "get_kernel",
    "lecture_image",
    "linear_params",
    "max_pool2d",
    "max_pool2d_backward",
    "output_size",
    "receptive_field",
    "receptive_fields",
    "relu",
    "relu_backward",
]
