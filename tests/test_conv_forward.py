"""conv2d and conv2d_naive against torch.nn.functional.conv2d, the lecture's numbers, the errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from hypothesis import given, settings
from hypothesis import strategies as st

from antlers.conv import KERNELS, conv2d, conv2d_naive, lecture_image

CONVS = [conv2d, conv2d_naive]


@st.composite
def conv_case(draw: st.DrawFn) -> dict:
    """Random small shapes, strides and paddings for which the kernel fits the padded input."""
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    square_stride, square_padding = draw(st.booleans()), draw(st.booleans())
    if square_stride:
        sw = sh
    if square_padding:
        pw = ph
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((n, c_in, h, w)),
        "w": rng.standard_normal((c_out, c_in, kh, kw)),
        "b": rng.standard_normal(c_out) if draw(st.booleans()) else None,
        "stride": sh if square_stride else (sh, sw),
        "padding": ph if square_padding else (ph, pw),
    }


def torch_conv(case: dict) -> np.ndarray:
    b = None if case["b"] is None else torch.from_numpy(case["b"])
    out = nnf.conv2d(
        torch.from_numpy(case["x"]),
        torch.from_numpy(case["w"]),
        b,
        stride=case["stride"],
        padding=case["padding"],
    )
    return out.numpy()


@settings(max_examples=80, deadline=None)
@given(case=conv_case())
def test_conv2d_equals_torch(case: dict) -> None:
    expected = torch_conv(case)
    for conv in CONVS:
        out = conv(case["x"], case["w"], case["b"], case["stride"], case["padding"])
        assert out.shape == expected.shape
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(3, 9), w=st.integers(3, 9), k=st.integers(1, 3), seed=st.integers(0, 99))
def test_2d_case_equals_torch(h: int, w: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, kernel = rng.standard_normal((h, w)), rng.standard_normal((k, k))
    expected = nnf.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(kernel)[None, None])
    for conv in CONVS:
        out = conv(x, kernel)
        assert out.shape == (h - k + 1, w - k + 1)
        np.testing.assert_allclose(out, expected[0, 0].numpy(), rtol=1e-10, atol=1e-10)


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 7), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    for conv in CONVS:
        out = conv(x, w, b, padding=1)
        assert out.dtype == np.float32
        expected = nnf.conv2d(
            torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1
        )
        np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_batch_split_into_blocks_equals_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch larger than one im2col block gives the same result as torch."""
    import antlers.conv.ops as ops

    monkeypatch.setattr(ops, "BLOCK_BYTES", 3000)  # a few images per block, last one partial
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((7, 2, 6, 5)), rng.standard_normal((3, 2, 3, 2)), np.ones(3)
    expected = nnf.conv2d(*map(torch.from_numpy, (x, w, b)), stride=(2, 1), padding=1).numpy()
    np.testing.assert_allclose(conv2d(x, w, b, (2, 1), 1), expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- the lecture


@pytest.mark.parametrize("conv", CONVS)
def test_lecture_vertical_line_detector(conv) -> None:
    out = conv(lecture_image(), KERNELS["vertical_line"])
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out, np.tile([0.0, -3.0, 6.0, -3.0], (3, 1)))
    assert out[1, 2] == 6


@pytest.mark.parametrize("conv", CONVS)
def test_lecture_shapes_3x50x70_to_10_channels(conv) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 3, 50, 70)), rng.standard_normal((10, 3, 3, 3))
    out = conv(x, w, np.zeros(10))
    assert out.shape == (1, 10, 48, 68)
    np.testing.assert_allclose(out, nnf.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy())


def test_convolution_is_linear() -> None:
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((2, 1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_allclose(conv2d(2 * x1 - 3 * x2, w), 2 * conv2d(x1, w) - 3 * conv2d(x2, w))


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("conv", CONVS)
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b_shape", "kwargs", "message"),
    [
        ((1, 3, 8, 8), (2, 4, 3, 3), None, {}, "input has 3 channels, kernel expects 4"),
        ((1, 1, 5, 6), (1, 1, 7, 3), None, {}, "kernel 7 > input 5 + 2x0 padding = 5"),
        ((1, 1, 5, 6), (1, 1, 9, 3), None, {"padding": 1}, "kernel 9 > input 5 + 2x1 padding = 7"),
        ((1, 1, 5, 6), (1, 1, 3, 3), None, {"stride": 0}, "stride must be >= 1, got stride=0"),
        ((1, 1, 5, 6), (1, 1, 3, 3), None, {"stride": (1, -2)}, "got stride=-2"),
        ((1, 1, 5, 6), (1, 1, 3, 3), None, {"padding": -1}, "padding must be >= 0, got padding=-1"),
        ((1, 1, 5, 6), (2, 1, 3, 3), (3,), {}, "bias must have shape (Cout,) = (2,)"),
        ((1, 5, 6), (1, 1, 3, 3), None, {}, "got x.ndim=3"),
        ((5, 6), (1, 1, 3, 3), None, {}, "w.ndim=4"),
        ((5, 6), (3, 3), (2,), {}, "a 2-D convolution takes a scalar bias"),
        ((1, 1, 5, 6), (1, 1, 3, 3), None, {"stride": 1.5}, "stride must be an int or a pair"),
    ],
)
def test_bad_configurations_raise_with_the_arithmetic(
    conv, x_shape: tuple, w_shape: tuple, b_shape: tuple | None, kwargs: dict, message: str
) -> None:
    b = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError, match=re.escape(message)):
        conv(np.zeros(x_shape), np.zeros(w_shape), b, **kwargs)


def test_channel_mismatch_message_is_complete() -> None:
    message = "channel mismatch: input has 3 channels, kernel expects 4 (w.shape[1])"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        conv2d(np.zeros((1, 3, 8, 8)), np.zeros((2, 4, 3, 3)))
