"""The lecture's networks: the slide's shapes and parameter counts, AlexNet's golden numbers."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from antlers.conv.arithmetic import conv_params, linear_params
from antlers.nn.lecture import (
    AlexNet,
    alexnet,
    build_model,
    default_input_shape,
    lecture_cnn,
)

SLIDE_SHAPES = {
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

ALEXNET_PARAMS = {
    "features.conv1": 34_944,
    "features.conv2": 614_656,
    "features.conv3": 885_120,
    "features.conv4": 1_327_488,
    "features.conv5": 884_992,
    "classifier.fc6": 37_752_832,
    "classifier.fc7": 16_781_312,
    "classifier.fc8": 4_097_000,
}

ALEXNET_SHAPES = {
    "conv1": (96, 55, 55),
    "pool1": (96, 27, 27),
    "conv2": (256, 27, 27),
    "pool2": (256, 13, 13),
    "conv3": (384, 13, 13),
    "conv4": (384, 13, 13),
    "conv5": (256, 13, 13),
    "pool5": (256, 6, 6),
}


def layer_shapes(model: nn.Sequential, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape (batch left out) of each named layer, running them one by one."""
    shapes = {}
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            shapes[name] = tuple(x.shape[1:])
    return shapes


@pytest.fixture(scope="module")
def alex() -> AlexNet:
    torch.manual_seed(0)
    return alexnet().eval()


def test_lecture_cnn_keeps_the_dimensions_of_the_slide() -> None:
    model = lecture_cnn(softmax=True)
    assert list(dict(model.named_children())) == list(SLIDE_SHAPES)
    assert layer_shapes(model, torch.zeros(1, 3, 50, 70)) == SLIDE_SHAPES
    assert model.fc.in_features == 1760


def test_lecture_cnn_parameters_follow_the_formulas() -> None:
    model = lecture_cnn()
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    assert counts["conv1"] == conv_params(3, 10, 3) == 10 * (3 * 3 * 3 + 1) == 280
    assert counts["conv2"] == conv_params(10, 10, 3) == 10 * (10 * 3 * 3 + 1) == 910
    assert counts["fc"] == linear_params(1760, 4) == 4 * (1760 + 1) == 7044
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters()) == 8234


def test_lecture_cnn_outputs_logits_unless_softmax() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 50, 70)
    logits = lecture_cnn()(x)
    assert logits.shape == (2, 4)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(2))
    probs = lecture_cnn(softmax=True)(x)
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_lecture_cnn_carries_classes_and_a_config_that_rebuilds_it() -> None:
    model = lecture_cnn(in_shape=(1, 28, 28), classes=("a", "b", "c"), channels=6)
    assert model.classes == ("a", "b", "c")
    config = json.loads(json.dumps(model.config))
    assert config == model.config
    rebuilt = lecture_cnn(**config)
    assert rebuilt.classes == model.classes
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    assert str(rebuilt) == str(model)


@pytest.mark.parametrize(
    ("in_shape", "kwargs", "features"),
    [
        ((1, 28, 28), {}, 10 * 5 * 5),  # 28 -> 26 -> 13 -> 11 -> 5
        ((3, 64, 64), {"blocks": 3}, 10 * 6 * 6),  # 64 -> 62 -> 31 -> 29 -> 14 -> 12 -> 6
        ((3, 50, 70), {"kernel_size": 5, "pool": 3, "channels": 4}, 4 * 3 * 6),
        ((2, 9, 40), {"blocks": 1, "pool": 1}, 10 * 7 * 38),
    ],
)
def test_lecture_cnn_sizes_its_fc_layer_for_any_input(
    in_shape: tuple[int, int, int], kwargs: dict[str, int], features: int
) -> None:
    model = lecture_cnn(in_shape=in_shape, **kwargs)
    assert model.fc.in_features == features
    assert model(torch.zeros(2, *in_shape)).shape == (2, 4)


@pytest.mark.parametrize(
    ("in_shape", "match"),
    [
        (
            (3, 8, 8),
            r"3x8x8 -> conv1 10x6x6 -> pool1 10x3x3 -> conv2 10x1x1 -> pool2: .*kernel 2 > ",
        ),
        ((3, 2, 40), r"-> conv1: kernel larger than the padded input: kernel 3 > input 2"),
    ],
)
def test_lecture_cnn_too_small_input_shows_the_arithmetic(
    in_shape: tuple[int, int, int], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        lecture_cnn(in_shape=in_shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 0}, "channels must be an int >= 1"),
        ({"blocks": 0}, "blocks must be an int >= 1"),
        ({"pool": 0}, "pool must be an int >= 1"),
        ({"classes": ()}, "classes must be a non-empty sequence of strings"),
        ({"classes": "CAR"}, "classes must be a non-empty sequence of strings"),
        ({"in_shape": (3, 50)}, r"in_shape must be \(C, H, W\)"),
    ],
)
def test_lecture_cnn_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lecture_cnn(**kwargs)  # type: ignore[arg-type]


def test_alexnet_has_the_papers_parameters(alex: AlexNet) -> None:
    modules = dict(alex.named_modules())
    counts = {name: sum(p.numel() for p in modules[name].parameters()) for name in ALEXNET_PARAMS}
    assert counts == ALEXNET_PARAMS
    assert sum(p.numel() for p in alex.parameters()) == 62_378_344
    assert modules["features.conv1"].weight.shape == (96, 3, 11, 11)
    assert alex.config == {"num_classes": 1000, "dropout": 0.5}


def test_alexnet_shapes_on_227(alex: AlexNet) -> None:
    x = torch.zeros(1, 3, 227, 227)
    shapes = layer_shapes(alex.features, x)
    assert {name: shapes[name] for name in ALEXNET_SHAPES} == ALEXNET_SHAPES
    with torch.no_grad():
        flat = alex.flatten(alex.features(x))
        assert flat.shape == (1, 9216)
        assert alex.classifier(flat).shape == (1, 1000)


def test_alexnet_num_classes_and_dropout() -> None:
    model = alexnet(num_classes=10, dropout=0.25)
    assert model.classifier.fc8.out_features == 10
    assert model.classifier.dropout6.p == model.classifier.dropout7.p == 0.25
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        alexnet(dropout=1.0)


def test_build_model_by_name() -> None:
    assert build_model("lecture_cnn", input_shape=(1, 28, 28)).fc.in_features == 250
    assert type(build_model("resnet18")).__name__ == "ResNet"
    assert default_input_shape("lecture_cnn") == (3, 50, 70)
    assert default_input_shape("alexnet") == (3, 227, 227)
    assert default_input_shape("resnet18") == (3, 224, 224)
    with pytest.raises(ValueError, match=r"unknown model 'moose'; allowed: lecture_cnn, alexnet.*"):
        build_model("moose")
