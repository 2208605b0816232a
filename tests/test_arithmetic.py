"""The layer arithmetic against real torch layers and a brute-force receptive field."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from antlers.conv import conv_params, linear_params, output_size, receptive_fields
from antlers.conv.arithmetic import pair


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 24),
    k=st.integers(1, 6),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
)
def test_output_size_equals_torch_conv(
    n: int, k: int, stride: int, padding: int, dilation: int
) -> None:
    layer = nn.Conv2d(1, 1, k, stride=stride, padding=padding, dilation=dilation, bias=False)
    x = torch.zeros(1, 1, n, n + 1)
    if dilation * (k - 1) + 1 > n + 2 * padding:
        with pytest.raises(RuntimeError):
            layer(x)
        with pytest.raises(ValueError, match="kernel larger than the padded input"):
            output_size(n, k, stride, padding, dilation)
        return
    shape = layer(x).shape
    assert shape[2] == output_size(n, k, stride, padding, dilation)
    assert shape[3] == output_size(n + 1, k, stride, padding, dilation)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 24), k=st.integers(1, 5), stride=st.integers(1, 4), data=st.data())
def test_output_size_equals_torch_pooling(n: int, k: int, stride: int, data: st.DataObject) -> None:
    padding = data.draw(st.integers(0, k // 2))
    assume(k <= n + 2 * padding)
    shape = nn.MaxPool2d(k, stride, padding)(torch.zeros(1, 1, n, n)).shape
    assert shape[2] == output_size(n, k, stride, padding)


def test_output_size_lecture_numbers_and_messages() -> None:
    assert output_size(6, 3) == 4  # the lecture's 5x6 image: 6 - 3 + 1
    assert output_size(5, 3) == 3
    assert [output_size(n, 3) for n in (50, 70)] == [48, 68]
    assert output_size(227, 11, stride=4) == 55  # AlexNet
    with pytest.raises(ValueError, match=re.escape("kernel 9 > input 5 + 2x1 padding = 7")):
        output_size(5, 9, padding=1)
    with pytest.raises(ValueError, match=re.escape("kernel 5 > input 4 + 2x0 padding = 4")):
        output_size(4, 3, dilation=2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        output_size(5, 3, padding=-1)
    with pytest.raises(ValueError, match="an int or a pair"):
        pair((1, 2, 3), "stride")


@settings(max_examples=40, deadline=None)
@given(
    c_in=st.integers(1, 16),
    c_out=st.integers(1, 16),
    kh=st.integers(1, 7),
    kw=st.integers(1, 7),
    bias=st.booleans(),
)
def test_conv_params_equals_torch(c_in: int, c_out: int, kh: int, kw: int, bias: bool) -> None:
    layer = nn.Conv2d(c_in, c_out, (kh, kw), bias=bias)
    assert conv_params(c_in, c_out, (kh, kw), bias) == sum(p.numel() for p in layer.parameters())
    if kh == kw:
        assert conv_params(c_in, c_out, kh, bias) == conv_params(c_in, c_out, (kh, kw), bias)


@settings(max_examples=40, deadline=None)
@given(n_in=st.integers(1, 300), n_out=st.integers(1, 50), bias=st.booleans())
def test_linear_params_equals_torch(n_in: int, n_out: int, bias: bool) -> None:
    layer = nn.Linear(n_in, n_out, bias=bias)
    assert linear_params(n_in, n_out, bias) == sum(p.numel() for p in layer.parameters())


def test_lecture_parameter_counts() -> None:
    assert conv_params(1, 1, 3) == 10  # a 3x3 kernel plus its bias
    assert linear_params(30, 12) == 372  # 5x6 input to 3x4 output, fully connected
    assert conv_params(3, 10, 3) == 280  # 3x50x70 -> 10 channels: 10 x (3x3x3 + 1)
    assert linear_params(1760, 4) == 7044  # flatten 10x11x16 -> CAR/TRUCK/VAN/BICYCLE


# ---------------------------------------------------------------------------- receptive field


def brute_force_support(layers: list[tuple[str, int, int, int]], n: int, index: int) -> list[int]:
    """Input rows that reach output unit ``(index, index)`` of a stack of torch layers.

    Conv layers have all-ones weights and avg pools average, so the input gradient of the unit
    is positive exactly on the pixels it sees.
    """
    modules: list[nn.Module] = []
    for kind, k, s, p in layers:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, s, p, bias=False)
            nn.init.ones_(conv.weight)
            modules.append(conv)
        else:
            modules.append(nn.AvgPool2d(k, s, p))
    x = torch.ones(1, 1, n, n, dtype=torch.float64, requires_grad=True)
    out = nn.Sequential(*modules).double()(x)
    assume(index < out.shape[2])
    out[0, 0, index, index].backward()
    return torch.nonzero(x.grad[0, 0].sum(dim=1) > 0).flatten().tolist()


layer_strategy = st.tuples(
    st.sampled_from(["conv", "pool"]), st.integers(1, 4), st.integers(1, 3)
).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.just(t[2]), st.integers(0, t[1] // 2))
)


def sees_only_real_pixels(layers: list, n: int, index: int) -> bool:
    """Whether unit ``index`` of the last layer sees no padding at any layer below it.

    (Otherwise the window of the recurrence reaches pixels that the unit cannot see.)
    """
    sizes = [n]
    for _, k, s, p in layers:
        sizes.append(output_size(sizes[-1], k, s, p))
    lo, hi = index, index
    for (_, k, s, p), size in zip(reversed(layers), reversed(sizes[:-1]), strict=True):
        lo, hi = lo * s - p, hi * s - p + k - 1
        if lo < 0 or hi >= size:
            return False
    return True


@settings(max_examples=80, deadline=None)
@given(layers=st.lists(layer_strategy, min_size=1, max_size=4), where=st.integers(0, 5))
def test_receptive_fields_equal_brute_force(layers: list, where: int) -> None:
    """The window of a unit holds exactly the input pixels it sees, if it sees no padding.

    Where a kernel is smaller than its stride, the window has holes: then only its ends are
    checked.
    """
    n = 40
    size = n
    for _, k, s, p in layers:
        assume(k <= size + 2 * p)
        size = output_size(size, k, s, p)
    rf = receptive_fields([(k, s, p) for _, k, s, p in layers])[-1]
    rows = brute_force_support(layers, n, where)
    lo, hi = rf.window(where)
    assert hi - lo == rf.size
    assert lo <= rows[0]
    assert rows[-1] < hi
    if sees_only_real_pixels(layers, n, where):
        assert (rows[0], rows[-1] + 1) == (lo, hi)
        if all(k >= s for _, k, s, _ in layers):
            assert rows == list(range(lo, hi))


def test_lecture_receptive_fields() -> None:
    # conv 3x3 -> pool 2 -> conv 3x3 -> pool 2, as in the lecture's CAR/TRUCK network.
    rfs = receptive_fields([(3, 1, 0), (2, 2, 0), (3, 1, 0), (2, 2, 0)])
    assert [(rf.size, rf.jump) for rf in rfs] == [(3, 1), (4, 2), (8, 2), (10, 4)]
    assert rfs[-1].window(0) == (0, 10)
    assert rfs[-1].window(1) == (4, 14)
