"""Tour chapter 2: a CNN, keeping the dimensions straight.

The lecture's network (3x50x70 -> conv 3x3, 10 ch -> pool -> conv -> pool -> flatten 1760 -> FC ->
softmax over CAR, TRUCK, VAN, BICYCLE) as a layer report with every formula filled in; AlexNet's
per-layer parameters; convolution against fully connected parameter counts; and translation
equivariance measured, not asserted.
"""

from __future__ import annotations

from antlers.conv.examples import params_text
from antlers.io.photos import sample_photo
from antlers.tour.page import Chapter, TourContext, paragraph, pre, table

__all__ = ["cnn_chapter"]

COLUMNS = ("name", "type", "output_shape", "formula", "rf", "jump", "macs")


def _equivariance_rows() -> list[dict[str, object]]:
    """Equivariance error of a few layers on a photo crop shifted by one pixel."""
    import torch
    from torch import nn

    from antlers.anatomy import equivariance

    torch.manual_seed(0)
    photo = torch.from_numpy(sample_photo("china")[100:164, 200:264]).permute(2, 0, 1)[None]
    x = photo.to(torch.float64)
    layers = {
        "conv 3x3, stride 1, + ReLU": nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()),
        "conv 3x3, stride 1, padding 1": nn.Conv2d(3, 8, 3, padding=1),
        "conv 3x3, stride 2": nn.Conv2d(3, 8, 3, stride=2),
        "max pool 2x2": nn.MaxPool2d(2),
    }
    rows = []
    for name, layer in layers.items():
        error = equivariance(layer.to(torch.float64), x, shift=(0, 1))
        verdict = "equivariant" if error < 1e-9 else "not equivariant"
        rows.append({"layer": name, "max |f(shift x) - shift f(x)|": f"{error:.2e}", "": verdict})
    return rows


def cnn_chapter(ctx: TourContext) -> Chapter:
    from antlers.anatomy import summary
    from antlers.nn.lecture import alexnet, lecture_cnn

    report = summary(lecture_cnn(softmax=True), (3, 50, 70))
    alex = summary(alexnet(), (3, 227, 227))
    alex_rows = [r for r in alex.to_dicts() if r["params"]]
    equivariance_rows = _equivariance_rows()
    body = "\n".join(
        [
            paragraph(
                "Conv + ReLU, pooling, stacked; then flatten, a fully connected layer and a "
                "softmax. Each row shows the output shape, the parameter formula with the "
                "numbers filled in (Cout x (Cin x K x K + 1) for a convolution, out x (in + 1) "
                "for a fully connected layer), the receptive field and jump in input pixels, "
                "and the multiply-accumulates."
            ),
            pre(str(report)),
            table(report.to_dicts(), COLUMNS),
            paragraph(
                "Why convolutions: a 3x3 kernel over the 5x6 image, against a fully "
                "connected layer producing the same 3x4 output."
            ),
            pre(params_text()),
            paragraph(
                "AlexNet (Krizhevsky et al. 2012), the lecture's classification network: "
                "its layers with parameters. The fully connected layers hold most of them."
            ),
            table(alex_rows, ("name", "type", "output_shape", "formula", "macs")),
            paragraph(
                "Translation equivariance: shift the input by one pixel; a stride-1 convolution's "
                "output shifts by one pixel too (zero error away from the borders), while a "
                "stride-2 convolution or a pooling layer does not."
            ),
            table(equivariance_rows),
        ]
    )
    summary_line = (
        f"lecture CNN {report.total_params:,} parameters, AlexNet {alex.total_params:,}; "
        f"stride-1 conv equivariance error {equivariance_rows[0]['max |f(shift x) - shift f(x)|']}"
    )
    return Chapter(2, "CNNs: keeping the dimensions straight", body, summary_line)
