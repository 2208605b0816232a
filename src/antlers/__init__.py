"""antlers: the convolutional-network lecture, runnable.

The public API. ``import antlers`` imports NumPy but never torch: the torch-backed names
(``summary``, ``equivariance``, ``lecture_cnn``, ``alexnet``, ``run_tour``, ``train``, ``Run``,
and from ``antlers.explain``: ``feature_maps``, ``fully_convolutional``, ``grad_cam``,
``top_k_activations``) load their module on first use.

>>> import antlers
>>> float(antlers.conv2d(antlers.lecture_image(), antlers.get_kernel("vertical_line"))[1, 2])
6.0
"""

from __future__ import annotations

import importlib
from typing import Any

from antlers.conv import (
    conv2d,
    conv2d_backward,
    conv2d_naive,
    conv_params,
    get_kernel,
    lecture_image,
    linear_params,
    output_size,
    receptive_fields,
)

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "Run": "antlers.run",
    "alexnet": "antlers.nn.lecture",
    "equivariance": "antlers.anatomy",
    "feature_maps": "antlers.explain",
    "fully_convolutional": "antlers.explain",
    "grad_cam": "antlers.explain",
    "lecture_cnn": "antlers.nn.lecture",
    "run_tour": "antlers.tour",
    "summary": "antlers.anatomy",
    "top_k_activations": "antlers.explain",
    "train": "antlers.run",
}

__all__ = [
    "Run",
    "__version__",
    "alexnet",
    "conv2d",
    "conv2d_backward",
    "conv2d_naive",
    "conv_params",
    "equivariance",
    "feature_maps",
    "fully_convolutional",
    "get_kernel",
    "grad_cam",
    "lecture_cnn",
    "lecture_image",
    "linear_params",
    "output_size",
    "receptive_fields",
    "run_tour",
    "summary",
    "top_k_activations",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'antlers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
