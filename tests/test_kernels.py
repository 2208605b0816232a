"""Named kernels, the lecture's toy image and the written-out dot product."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from antlers.conv import KERNELS, conv2d, describe_element, get_kernel, lecture_image

EXPECTED_NAMES = [
    "box_blur",
    "gaussian",
    "horizontal_line",
    "laplacian",
    "sobel_x",
    "sobel_y",
    "vertical_line",
]


def test_kernel_names_shapes_and_dtype() -> None:
    assert sorted(KERNELS) == EXPECTED_NAMES
    for name, kernel in KERNELS.items():
        assert kernel.shape == (3, 3), name
        assert kernel.dtype == np.float64, name


def test_kernel_values() -> None:
    np.testing.assert_array_equal(KERNELS["vertical_line"], [[-1, 2, -1]] * 3)
    np.testing.assert_array_equal(KERNELS["horizontal_line"], KERNELS["vertical_line"].T)
    np.testing.assert_array_equal(KERNELS["sobel_x"], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(KERNELS["sobel_y"], KERNELS["sobel_x"].T)
    np.testing.assert_array_equal(KERNELS["laplacian"], [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_allclose(KERNELS["box_blur"], np.full((3, 3), 1 / 9))
    np.testing.assert_allclose(KERNELS["gaussian"] * 16, np.outer([1, 2, 1], [1, 2, 1]))
    # Smoothing kernels keep a constant image; derivative kernels send it to zero.
    for name in ("box_blur", "gaussian"):
        assert KERNELS[name].sum() == pytest.approx(1.0)
    for name in ("vertical_line", "horizontal_line", "sobel_x", "sobel_y", "laplacian"):
        assert KERNELS[name].sum() == 0


def test_get_kernel_returns_a_copy() -> None:
    kernel = get_kernel("sobel_x")
    kernel[0, 0] = 100.0
    assert KERNELS["sobel_x"][0, 0] == -1
    assert get_kernel("sobel_x")[0, 0] == -1


def test_unknown_kernel_lists_the_known_names_sorted() -> None:
    with pytest.raises(ValueError, match=re.escape(", ".join(EXPECTED_NAMES))) as error:
        get_kernel("sobel")
    assert "'sobel'" in str(error.value)


def test_lecture_image() -> None:
    image = lecture_image()
    assert image.shape == (5, 6)
    np.testing.assert_array_equal(image[:, 3], np.ones(5))
    assert image.sum() == 5
    out = conv2d(image, get_kernel("vertical_line"))
    np.testing.assert_array_equal(out, [[0, -3, 6, -3]] * 3)
    assert out[1, 2] == 6


def test_sobel_x_responds_to_a_vertical_edge_like_torch() -> None:
    image = np.zeros((6, 6))
    image[:, 3:] = 1.0  # dark left half, bright right half
    out = conv2d(image, KERNELS["sobel_x"])
    kernel = torch.from_numpy(KERNELS["sobel_x"])[None, None]
    expected = nnf.conv2d(torch.from_numpy(image)[None, None], kernel)
    np.testing.assert_allclose(out, expected[0, 0].numpy())
    np.testing.assert_array_equal(out, [[0, 4, 4, 0]] * 4)
    np.testing.assert_array_equal(conv2d(image, KERNELS["sobel_y"]), np.zeros((4, 4)))


def test_describe_element_lecture() -> None:
    text = describe_element(lecture_image(), KERNELS["vertical_line"], 1, 2)
    assert text == (
        "out[1, 2] = (-1)(0) + (2)(1) + (-1)(0) + (-1)(0) + (2)(1) + (-1)(0)"
        " + (-1)(0) + (2)(1) + (-1)(0) = 6"
    )
    assert describe_element(lecture_image(), KERNELS["vertical_line"], 0, 1).endswith("= -3")


def test_describe_element_agrees_with_conv2d() -> None:
    rng = np.random.default_rng(0)
    x, w = rng.integers(-3, 4, (5, 6)).astype(float), rng.integers(-2, 3, (2, 3)).astype(float)
    out = conv2d(x, w)
    for i, j in [(0, 0), (3, 3), (2, 1)]:
        text = describe_element(x, w, i, j)
        assert text.startswith(f"out[{i}, {j}] = (")
        assert text.count(")(") == w.size
        assert text.endswith(f"= {int(out[i, j])}")
    assert describe_element(np.full((2, 2), 0.5), np.full((2, 2), 0.25), 0, 0).endswith("= 0.5")


def test_describe_element_rejects_positions_outside_the_output() -> None:
    with pytest.raises(ValueError, match=re.escape("outside the 3x4 output: i must be in 0..2")):
        describe_element(lecture_image(), KERNELS["vertical_line"], 3, 0)
