"""The lecture's networks in PyTorch: the small CNN of "keeping the dimensions straight", AlexNet.

Shapes are ``(N, C, H, W)`` (batch, channels, height, width) as everywhere in PyTorch; the input
shapes given to the builders below (``in_shape``) leave the batch out: ``(C, H, W)``.

``lecture_cnn()`` with its defaults is the slide exactly::

    3x50x70 -> conv1 3x3, 10 ch -> 10x48x68 -> pool1 2x2 -> 10x24x34
            -> conv2 3x3, 10 ch -> 10x22x32 -> pool2 2x2 -> 10x11x16
            -> flatten 1760 -> fc -> 4 (CAR, TRUCK, VAN, BICYCLE) [-> softmax]

``alexnet()`` is Krizhevsky, Sutskever and Hinton (2012) on one GPU (no two-tower groups).

Every model built here carries ``model.config``, a plain JSON-friendly dict such that
``builder(**model.config)`` rebuilds it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from antlers.conv.arithmetic import output_size

__all__ = [
    "ALEXNET_INPUT_SHAPE",
    "IMAGENET_INPUT_SHAPE",
    "LECTURE_CLASSES",
    "LECTURE_INPUT_SHAPE",
    "AlexNet",
    "alexnet",
    "build_model",
    "default_input_shape",
    "lecture_cnn",
]

LECTURE_CLASSES = ("CAR", "TRUCK", "VAN", "BICYCLE")
LECTURE_INPUT_SHAPE = (3, 50, 70)
ALEXNET_INPUT_SHAPE = (3, 227, 227)
IMAGENET_INPUT_SHAPE = (3, 224, 224)


def lecture_cnn(
    in_shape: Sequence[int] = LECTURE_INPUT_SHAPE,
    channels: int = 10,
    kernel_size: int = 3,
    classes: Sequence[str] = LECTURE_CLASSES,
    blocks: int = 2,
    pool: int = 2,
    softmax: bool = False,
) -> nn.Sequential:
    """The lecture's CNN: ``blocks`` x (conv, ReLU, max pool), flatten, one fully connected layer.

    Args:
        in_shape: input ``(C, H, W)`` without the batch dimension.
        channels: output channels of every convolution.
        kernel_size: side K of the K x K kernels (stride 1, no padding: H -> H - K + 1).
        classes: class names; the fully connected layer has ``len(classes)`` outputs.
        blocks: number of conv + ReLU + pool blocks, named ``conv1, relu1, pool1, conv2, ...``.
        pool: side P of the P x P max pooling, stride P (H -> floor(H / P)); 1 keeps the size.
        softmax: append ``softmax`` (over dim 1) so that the model outputs probabilities;
            by default it outputs logits, which is what ``nn.CrossEntropyLoss`` expects.

    Returns:
        ``nn.Sequential`` mapping ``(N, *in_shape)`` to ``(N, len(classes))``, with
        ``model.classes`` (tuple of names) and ``model.config`` (kwargs that rebuild it).

    Raises:
        ValueError: for an invalid argument, or an input too small for the blocks (the message
            shows the shapes layer by layer up to the one that does not fit).
    """
    c, h, w = _check_shape(in_shape)
    _check_positive(channels=channels, kernel_size=kernel_size, blocks=blocks, pool=pool)
    _check_classes(classes)
    h_out, w_out = _feature_size((c, h, w), channels, kernel_size, blocks, pool)
    layers = _conv_blocks(c, channels, kernel_size, blocks, pool)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(channels * h_out * w_out, len(classes))
    if softmax:
        layers["softmax"] = nn.Softmax(dim=1)
    model = nn.Sequential(layers)
    model.classes = tuple(classes)
    model.config = {
        "in_shape": [c, h, w],
        "channels": channels,
        "kernel_size": kernel_size,
        "classes": list(classes),
        "blocks": blocks,
        "pool": pool,
        "softmax": softmax,
    }
    return model


def _conv_blocks(
    c_in: int, channels: int, kernel_size: int, blocks: int, pool: int
) -> OrderedDict[str, nn.Module]:
    """``blocks`` x (conv K x K, ReLU, max pool P x P): ``conv1, relu1, pool1, conv2, ...``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for b in range(1, blocks + 1):
        layers[f"conv{b}"] = nn.Conv2d(c_in, channels, kernel_size)
        layers[f"relu{b}"] = nn.ReLU()
        layers[f"pool{b}"] = nn.MaxPool2d(pool)
        c_in = channels
    return layers


def _feature_size(
    in_shape: tuple[int, int, int], channels: int, kernel_size: int, blocks: int, pool: int
) -> tuple[int, int]:
    """``(H, W)`` after the conv/pool blocks, by ``output_size``; ValueError shows the way there."""
    _, h, w = in_shape
    steps = ["x".join(map(str, in_shape))]
    for b in range(1, blocks + 1):
        for layer, k, stride in ((f"conv{b}", kernel_size, 1), (f"pool{b}", pool, pool)):
            try:
                h = output_size(h, k, stride)
                w = output_size(w, k, stride)
            except ValueError as err:
                raise ValueError(
                    f"in_shape {steps[0]} is too small for {blocks} blocks of "
                    f"{kernel_size}x{kernel_size} conv + {pool}x{pool} max pool: "
                    f"{' -> '.join(steps)} -> {layer}: {err}"
                ) from None
            steps.append(f"{layer} {channels}x{h}x{w}")
    return h, w


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012), single tower: ``(N, 3, 227, 227) -> (N, num_classes)``.

    ``features`` (output ``(N, 256, 6, 6)``)::

        conv1  96 x 3x11x11, stride 4  -> 96x55x55   relu1, norm1 (LRN), pool1 3/2 -> 96x27x27
        conv2 256 x 96x5x5, padding 2  -> 256x27x27  relu2, norm2 (LRN), pool2 3/2 -> 256x13x13
        conv3 384 x 256x3x3, padding 1 -> 384x13x13  relu3
        conv4 384 x 384x3x3, padding 1 -> 384x13x13  relu4
        conv5 256 x 384x3x3, padding 1 -> 256x13x13  relu5, pool5 3/2 -> 256x6x6

    ``flatten`` -> 9216, then ``classifier``: fc6 4096, relu6, dropout6, fc7 4096, relu7,
    dropout7, fc8 ``num_classes`` (logits; dropout on the outputs of the first two fully
    connected layers, as in the paper). ``features.pool5`` is the lecture's "5th pooling layer".

    LRN is ``nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2)``. PyTorch (like Caffe)
    divides ``alpha`` by ``size``, so this is the Caffe reference model's normalisation; the
    paper's formula with alpha=1e-4 would be ``alpha=5e-4`` here. Parameters do not change.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        _check_positive(num_classes=num_classes)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.config = {"num_classes": num_classes, "dropout": dropout}
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(3, 96, kernel_size=11, stride=4)),
                    ("relu1", nn.ReLU()),
                    ("norm1", _lrn()),
                    ("pool1", nn.MaxPool2d(kernel_size=3, stride=2)),
                    ("conv2", nn.Conv2d(96, 256, kernel_size=5, padding=2)),
                    ("relu2", nn.ReLU()),
                    ("norm2", _lrn()),
                    ("pool2", nn.MaxPool2d(kernel_size=3, stride=2)),
                    ("conv3", nn.Conv2d(256, 384, kernel_size=3, padding=1)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(384, 384, kernel_size=3, padding=1)),
                    ("relu4", nn.ReLU()),
                    ("conv5", nn.Conv2d(384, 256, kernel_size=3, padding=1)),
                    ("relu5", nn.ReLU()),
                    ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),
                ]
            )
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc6", nn.Linear(256 * 6 * 6, 4096)),
                    ("relu6", nn.ReLU()),
                    ("dropout6", nn.Dropout(dropout)),
                    ("fc7", nn.Linear(4096, 4096)),
                    ("relu7", nn.ReLU()),
                    ("dropout7", nn.Dropout(dropout)),
                    ("fc8", nn.Linear(4096, num_classes)),
                ]
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, 227, 227)`` images -> ``(N, num_classes)`` logits."""
        return self.classifier(self.flatten(self.features(x)))


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def alexnet(num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet as in the lecture's figure; see :class:`AlexNet`. 62,378,344 parameters at 1000."""
    return AlexNet(num_classes=num_classes, dropout=dropout)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The ``(C, H, W)`` a named model is drawn for: 3x50x70, 3x227x227, else 3x224x224."""
    return {"lecture_cnn": LECTURE_INPUT_SHAPE, "alexnet": ALEXNET_INPUT_SHAPE}.get(
        name, IMAGENET_INPUT_SHAPE
    )


def build_model(name: str, input_shape: Sequence[int] | None = None) -> nn.Module:
    """A fresh, untrained model by name.

    Args:
        name: ``"lecture_cnn"``, ``"alexnet"`` (this module's), or a torchvision classification
            model (``"resnet18"``, ``"vgg11"``, ...) built with ``weights=None``.
        input_shape: ``(C, H, W)``; used by ``lecture_cnn`` to size its fully connected layer,
            ignored by the others (AlexNet expects 3x227x227; torchvision models pool adaptively).

    Raises:
        ValueError: for an unknown name, listing the allowed ones.
    """
    if name == "lecture_cnn":
        return lecture_cnn(in_shape=input_shape or LECTURE_INPUT_SHAPE)
    if name == "alexnet":
        return alexnet()
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(
            f"unknown model {name!r}; allowed: lecture_cnn, alexnet, or a torchvision "
            f"classification model: {', '.join(n for n in known if n != 'alexnet')}"
        )
    return torchvision.models.get_model(name, weights=None)


def _check_shape(in_shape: Sequence[int]) -> tuple[int, int, int]:
    dims = tuple(in_shape)
    if len(dims) != 3 or not all(isinstance(d, int) and d >= 1 for d in dims):
        raise ValueError(f"in_shape must be (C, H, W), three ints >= 1, got {in_shape!r}")
    return dims  # type: ignore[return-value]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _check_classes(classes: Sequence[str]) -> None:
    if isinstance(classes, str) or not classes or not all(isinstance(n, str) for n in classes):
        raise ValueError(f"classes must be a non-empty sequence of strings, got {classes!r}")
