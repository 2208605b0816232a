"""The hand-written backward rules of ops.py against torch autograd."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from hypothesis import given, settings
from hypothesis import strategies as st

from antlers.conv import (
    avg_pool2d,
    avg_pool2d_backward,
    conv2d,
    conv2d_backward,
    max_pool2d,
    max_pool2d_backward,
    relu,
    relu_backward,
)

TOL = {"rtol": 1e-10, "atol": 1e-10}


@st.composite
def conv_case(draw: st.DrawFn) -> dict:
    """Random small shapes, strides and paddings for which the kernel fits the padded input."""
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 9))
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "x": rng.standard_normal((n, c_in, h, w)),
        "w": rng.standard_normal((c_out, c_in, kh, kw)),
        "stride": stride,
        "padding": padding,
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def torch_grads(
    forward, x: np.ndarray, grad_out: np.ndarray, *params: np.ndarray
) -> list[np.ndarray]:
    """Gradients of ``sum(forward(x, *params) * grad_out)`` w.r.t. x and params, by autograd."""
    tensors = [torch.from_numpy(a).requires_grad_() for a in (x, *params)]
    out = forward(*tensors)
    grads = torch.autograd.grad(out, tensors, torch.from_numpy(grad_out))
    return [g.numpy() for g in grads]


@settings(max_examples=80, deadline=None)
@given(case=conv_case())
def test_conv2d_backward_equals_autograd(case: dict) -> None:
    x, w, stride, padding = case["x"], case["w"], case["stride"], case["padding"]
    b = np.zeros(len(w))
    out = conv2d(x, w, b, stride, padding)
    grad_out = np.random.default_rng(case["seed"]).standard_normal(out.shape)

    def forward(xt: torch.Tensor, wt: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
        return nnf.conv2d(xt, wt, bt, stride=stride, padding=padding)

    expected = torch_grads(forward, x, grad_out, w, b)
    grads = conv2d_backward(grad_out, x, w, stride, padding)
    for name, ours, theirs in zip(("x", "w", "b"), grads, expected, strict=True):
        assert ours.shape == theirs.shape, name
        np.testing.assert_allclose(ours, theirs, **TOL, err_msg=name)


def test_conv2d_backward_2d_case_and_float32() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 6)), rng.standard_normal((3, 3))
    grad_out = rng.standard_normal((3, 4))
    grad_x, grad_w, grad_b = conv2d_backward(grad_out, x, w)
    expected = torch_grads(
        lambda a, k: nnf.conv2d(a[None, None], k[None, None])[0, 0], x, grad_out, w
    )
    np.testing.assert_allclose(grad_x, expected[0], **TOL)
    np.testing.assert_allclose(grad_w, expected[1], **TOL)
    np.testing.assert_allclose(grad_b, [grad_out.sum()], **TOL)
    grads32 = conv2d_backward(*(a.astype(np.float32) for a in (grad_out, x, w)))
    assert [g.dtype for g in grads32] == [np.float32] * 3


def test_conv2d_backward_checks_grad_out_shape() -> None:
    with pytest.raises(
        ValueError, match=re.escape("output's shape (1, 2, 3, 4), got (1, 2, 4, 3)")
    ):
        conv2d_backward(np.zeros((1, 2, 4, 3)), np.zeros((1, 1, 5, 6)), np.zeros((2, 1, 3, 3)))


# ---------------------------------------------------------------------------- pooling


@st.composite
def pool_case(draw: st.DrawFn) -> dict:
    """Small pools; values drawn from {0, 1, 2} half of the time, so that maxima tie."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    h, w = draw(st.integers(kernel[0], 8)), draw(st.integers(kernel[1], 8))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ties = draw(st.booleans())
    x = rng.integers(0, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    return {"x": x, "kernel": kernel, "stride": stride, "rng": rng}


@settings(max_examples=80, deadline=None)
@given(case=pool_case())
def test_max_pool_equals_torch_including_ties(case: dict) -> None:
    x, kernel, stride = case["x"], case["kernel"], case["stride"]
    expected = nnf.max_pool2d(torch.from_numpy(x), kernel, stride).numpy()
    out = max_pool2d(x, kernel, stride)
    np.testing.assert_array_equal(out, expected)
    grad_out = case["rng"].standard_normal(out.shape)
    (expected_grad,) = torch_grads(lambda t: nnf.max_pool2d(t, kernel, stride), x, grad_out)
    np.testing.assert_allclose(max_pool2d_backward(grad_out, x, kernel, stride), expected_grad)


@settings(max_examples=60, deadline=None)
@given(case=pool_case())
def test_avg_pool_equals_torch(case: dict) -> None:
    x, kernel, stride = case["x"], case["kernel"], case["stride"]
    expected = nnf.avg_pool2d(torch.from_numpy(x), kernel, stride).numpy()
    out = avg_pool2d(x, kernel, stride)
    np.testing.assert_allclose(out, expected, **TOL)
    grad_out = case["rng"].standard_normal(out.shape)
    (expected_grad,) = torch_grads(lambda t: nnf.avg_pool2d(t, kernel, stride), x, grad_out)
    np.testing.assert_allclose(
        avg_pool2d_backward(grad_out, x, kernel, stride), expected_grad, **TOL
    )


def test_max_pool_tie_goes_to_first_maximum_in_row_major_order() -> None:
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    grad = max_pool2d_backward(np.array([[[[5.0]]]]), x, 2)
    np.testing.assert_array_equal(grad, [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_pools_reject_bad_configurations() -> None:
    with pytest.raises(ValueError, match=re.escape("kernel 3 > input 2 + 2x0 padding = 2")):
        max_pool2d(np.zeros((1, 1, 2, 5)), 3)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        avg_pool2d(np.zeros((1, 1, 4, 4)), 2, 0)
    with pytest.raises(ValueError, match=re.escape("(N, C, H, W), got ndim=2")):
        max_pool2d(np.zeros((4, 4)))


# ---------------------------------------------------------------------------- ReLU


def test_relu_equals_torch_including_zero() -> None:
    x = np.array([[-2.0, -0.0, 0.0, 0.5], [3.0, -1e-300, 1e-300, -7.0]])
    grad_out = np.arange(1.0, 9.0).reshape(2, 4)
    np.testing.assert_array_equal(relu(x), torch.relu(torch.from_numpy(x)).numpy())
    (expected,) = torch_grads(torch.relu, x, grad_out)
    np.testing.assert_array_equal(relu_backward(grad_out, x), expected)
    np.testing.assert_array_equal(relu_backward(grad_out, x), [[0, 0, 0, 4], [5, 0, 7, 0]])
