"""summary (shapes, formulas, receptive fields, MACs, ShapeError) and the equivariance check.

Oracles: p.numel() for parameters, conv2d on ones for MACs, gradient support for receptive
fields.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from antlers.anatomy import ShapeError, equivariance, summary
from antlers.nn.lecture import lecture_cnn


def test_summary_of_the_lecture_cnn() -> None:
    model = lecture_cnn(softmax=True)
    rows = {row["name"]: row for row in summary(model, (3, 50, 70)).rows}
    assert {name: row["output_shape"] for name, row in rows.items()} == {
        "conv1": (10, 48, 68),
        "relu1": (10, 48, 68),
        "pool1": (10, 24, 34),
        "conv2": (10, 22, 32),
        "relu2": (10, 22, 32),
        "pool2": (10, 11, 16),
        "flatten": (1760,),
        "fc": (4,),
        "softmax": (4,),
    }
    assert rows["conv1"]["formula"] == "10x(3x3x3+1) = 280"
    assert rows["conv2"]["formula"] == "10x(10x3x3+1) = 910"
    assert rows["fc"]["formula"] == "4x(1760+1) = 7,044"
    assert rows["relu1"]["formula"] == rows["pool2"]["formula"] == ""
    assert rows["conv1"]["type"] == "Conv2d"
    modules = dict(model.named_children())
    for name, row in rows.items():
        assert row["params"] == sum(p.numel() for p in modules[name].parameters())
    assert [row["rf"] for row in rows.values()] == [3, 3, 4, 8, 8, 10, None, None, None]
    assert [row["jump"] for row in rows.values()] == [1, 1, 2, 2, 2, 4, None, None, None]
    assert rows["conv1"]["macs"] == 10 * 48 * 68 * 3 * 3 * 3
    assert rows["fc"]["macs"] == 1760 * 4


def test_summary_totals_and_text_table() -> None:
    model = lecture_cnn()
    model.conv1.weight.requires_grad_(False)
    report = summary(model, (3, 50, 70))
    assert report.total_params == sum(p.numel() for p in model.parameters()) == 8234
    assert report.trainable_params == 8234 - 270
    assert report.total_macs == sum(row["macs"] for row in report.rows) > 0
    assert report.to_dicts() == report.rows
    assert report.to_dicts()[0] is not report.rows[0]
    lines = str(report).splitlines()
    assert lines[0].split() == [
        "layer",
        "type",
        "output",
        "shape",
        "params",
        "formula",
        "rf",
        "jump",
        "MACs",
    ]
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.index("10x48x68") == lines[0].index("output shape")
    assert conv1.index("10x(3x3x3+1) = 280") == lines[0].index("formula")
    assert "8,234 parameters (7,964 trainable)" in lines[-1]
    assert "<table>" in report._repr_html_()


def test_summary_formulas_of_other_layers() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.Conv2d(64, 64, 3, groups=64),
        nn.ConvTranspose2d(64, 8, 2, stride=2),
        nn.Flatten(),
        nn.Linear(8 * 12 * 12, 5, bias=False),
    )
    rows = summary(model, (3, 10, 10)).rows
    assert [row["formula"] for row in rows] == [
        "64x3x3x3 = 1,728",
        "2x64 = 128",
        "64x(1x3x3+1) = 640",
        "64x8x2x2+8 = 2,056",
        "",
        "5x1152 = 5,760",
    ]
    assert [row["params"] for row in rows] == [
        sum(p.numel() for p in m.parameters()) for m in model
    ]


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 8, 3),
        nn.Conv2d(4, 6, 5, stride=2),
        nn.Conv2d(4, 8, 3, groups=2),
        nn.Conv2d(3, 5, (3, 5), stride=(1, 2), dilation=(2, 1)),
    ],
)
def test_conv_macs_equal_a_brute_force_count(conv: nn.Conv2d) -> None:
    x = torch.ones(1, conv.in_channels, 19, 24)
    ones = torch.ones_like(conv.weight)
    # Each output value of ones (*) ones is the number of products that made it.
    products = torch.nn.functional.conv2d(
        x, ones, stride=conv.stride, dilation=conv.dilation, groups=conv.groups
    )
    assert summary(conv, (conv.in_channels, 19, 24)).rows[0]["macs"] == int(products.sum())


def _ones_copy(model: nn.Sequential) -> nn.Sequential:
    """All-ones kernels, zero biases, top-level max pooling as average pooling: gradients then
    reach the whole receptive field (max pooling would route them to one pixel)."""
    ones = copy.deepcopy(model)
    for module in ones.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for index, layer in enumerate(ones):
        if isinstance(layer, nn.MaxPool2d):
            ones[index] = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    return ones


def _support(model: nn.Module, x: torch.Tensor, unit: tuple[int, int]) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of the input on which output ``unit`` depends (gradient support)."""
    x = x.clone().requires_grad_(True)
    model(x)[0, 0, unit[0], unit[1]].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.min()), int(rows.max()) + 1


def test_receptive_fields_equal_the_gradient_support() -> None:
    chain = nn.Sequential(
        nn.Conv2d(1, 1, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(1, 1, 3, stride=2, padding=1),
        nn.Conv2d(1, 1, 3, dilation=2),
        nn.AvgPool2d(3, stride=1, padding=1),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(1, 1, (5, 3)),  # rectangular: rf is the height direction
    )
    rows = summary(chain, (1, 160, 160)).rows
    ones = _ones_copy(chain)
    x = torch.ones(1, 1, 160, 160)
    for depth, row in enumerate(rows, start=1):
        prefix = ones[:depth]
        h = row["output_shape"][1] // 2
        lo, hi = _support(prefix, x, (h, h))
        next_lo, _ = _support(prefix, x, (h + 1, h))
        assert (row["rf"], row["jump"]) == (hi - lo, next_lo - lo), row["name"]
    assert rows[-1]["rf"] == 72


class Residual(nn.Module):
    """``conv2(conv1(x)) + x``: the sum is made outside any module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 3, padding=1)
        self.conv2 = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def test_receptive_field_after_a_residual_sum() -> None:
    model = nn.Sequential(Residual(), nn.Conv2d(1, 1, 3, padding=1))
    rows = summary(model, (1, 32, 32)).rows
    assert [row["rf"] for row in rows] == [3, 5, 7]
    lo, hi = _support(_ones_copy(model), torch.ones(1, 1, 32, 32), (16, 16))
    assert hi - lo == 7


class LayerScale(nn.Module):
    """``gamma * conv(x)``: a block with a parameter of its own besides its child's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.gamma = nn.Parameter(torch.ones(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.conv(x)


def test_a_block_with_its_own_parameters_gets_a_row() -> None:
    model = nn.Sequential(LayerScale(), nn.Conv2d(2, 2, 3))
    report = summary(model, (2, 16, 16))
    assert [(row["name"], row["formula"], row["rf"]) for row in report.rows] == [
        ("0.conv", "2x(2x3x3+1) = 38", 3),
        ("0", "2x1x1 = 2", 3),
        ("1", "2x(2x3x3+1) = 38", 5),
    ]
    assert sum(row["params"] for row in report.rows) == report.total_params == 78


def test_summary_of_resnet18_with_branches() -> None:
    model = torchvision.models.resnet18(weights=None)
    running_mean = model.bn1.running_mean.clone()
    report = summary(model, (3, 64, 64))
    assert report.total_params == sum(p.numel() for p in model.parameters()) == 11_689_512
    assert sum(row["params"] for row in report.rows) == report.total_params
    rows = {row["name"]: row for row in report.rows}
    assert rows["conv1"]["output_shape"] == (64, 32, 32)
    assert rows["layer4.1.conv2"]["output_shape"] == (512, 2, 2)
    assert (rows["conv1"]["rf"], rows["maxpool"]["rf"], rows["layer4.1.conv2"]["rf"]) == (
        7,
        11,
        435,
    )
    assert rows["fc"]["output_shape"] == (1000,)
    assert rows["fc"]["rf"] is None
    assert rows["layer1.0.bn1"]["formula"] == "2x64 = 128"
    assert model.training
    assert model.bn1.training
    torch.testing.assert_close(model.bn1.running_mean, running_mean)


def test_summary_of_alexnet_matches_the_paper() -> None:
    from antlers.nn.lecture import alexnet

    rows = {row["name"]: row for row in summary(alexnet(), (3, 227, 227)).rows}
    assert rows["features.conv1"]["formula"] == "96x(3x11x11+1) = 34,944"
    assert rows["features.pool5"]["output_shape"] == (256, 6, 6)
    assert rows["features.pool5"]["rf"] == 195
    assert rows["flatten"]["output_shape"] == (9216,)
    assert rows["classifier.fc6"]["formula"] == "4096x(9216+1) = 37,752,832"


def test_shape_error_names_the_fc_layer_and_the_numbers() -> None:
    with pytest.raises(ShapeError) as info:
        summary(lecture_cnn(), (3, 54, 70))
    message = str(info.value)
    assert "breaks at layer fc: Linear(in_features=1760, out_features=4, bias=True)" in message
    assert (
        "fc expects 1760 input features but receives 1920 = 10x12x16 "
        "(the flattened output of pool2)"
    ) in message
    assert "layers that ran:" in message
    assert "pool2    MaxPool2d  10x12x16" in message
    assert "Traceback" not in message
    assert isinstance(info.value, ValueError)
    assert info.value.__suppress_context__


def test_shape_error_for_a_channel_mismatch() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(8, 4, 3))
    with pytest.raises(ShapeError, match=r"breaks at layer 1: Conv2d\(8, 4") as info:
        summary(model, (3, 20, 20))
    assert "1 expects 8 input channels but receives 16 (input 16x18x18)" in str(info.value)


def test_shape_error_for_a_kernel_larger_than_its_input() -> None:
    with pytest.raises(ShapeError) as info:
        summary(lecture_cnn(), (3, 8, 8))
    message = str(info.value)
    assert "pool2 receives 10x1x1" in message
    assert "kernel larger than the padded input: kernel 2 > input 1 + 2x0 padding = 1" in message


def test_summary_rejects_bad_input_shapes() -> None:
    with pytest.raises(ValueError, match="input_shape must be ints >= 1"):
        summary(lecture_cnn(), (3, 0, 70))


@pytest.mark.parametrize(
    "module",
    [
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 5), nn.ReLU()),
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=2)),
        nn.Sequential(nn.Conv2d(3, 8, 3, dilation=2), nn.AvgPool2d(3, stride=1)),
        pytest.param(
            nn.Conv2d(3, 4, 4, padding="same"),  # even kernel: one more padding pixel right
            marks=pytest.mark.filterwarnings("ignore:Using padding='same'"),
        ),
    ],
)
@pytest.mark.parametrize("shift", [(0, 1), (1, 0), (-2, 3)])
def test_stride_one_convolutions_are_equivariant(module: nn.Module, shift: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 24, 28)
    assert equivariance(module, x, shift) < 1e-5


@pytest.mark.parametrize(
    "module",
    [
        nn.Conv2d(3, 8, 3, stride=2),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
    ],
)
def test_stride_two_and_pooling_are_not_equivariant(module: nn.Module) -> None:
    torch.manual_seed(0)
    assert equivariance(module, torch.randn(3, 24, 24)) > 1e-3


def test_equivariance_leaves_the_module_as_it_was() -> None:
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5))
    x = torch.randn(1, 3, 16, 16)
    assert equivariance(module, x) < 1e-5  # dropout is off during the check
    assert module.training


def test_equivariance_rejects_what_it_cannot_check() -> None:
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="known receptive field"):
        equivariance(nn.Sequential(nn.Flatten(), nn.Linear(192, 4)), x)
    with pytest.raises(ValueError, match="must be smaller than the image"):
        equivariance(nn.Conv2d(3, 4, 3), x, shift=(0, 8))
    with pytest.raises(ValueError, match="no output unit is clear of the borders"):
        equivariance(nn.Conv2d(3, 4, 7), x, shift=(0, 2))
