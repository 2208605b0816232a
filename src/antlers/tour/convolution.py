"""Tour chapter 1: one convolution, from the 5x6 toy image to a real photo.

Shows the lecture's vertical-line detector on its toy image (every number), element (1, 2)
written out as a dot product, then the classic kernels on a bundled photo, computed by our own
NumPy ``conv2d`` and checked against the loops of the definition and against PyTorch.
"""

from __future__ import annotations

import numpy as np

from antlers.conv import conv2d, conv2d_naive, get_kernel, lecture_image
from antlers.conv.examples import edge_detector_text
from antlers.io.photos import sample_photo, to_grayscale
from antlers.tour.page import Chapter, TourContext, figure, paragraph, pre, table
from antlers.viz import figures as viz

__all__ = ["convolution_chapter"]

PHOTO_KERNELS = ("vertical_line", "horizontal_line", "sobel_x", "sobel_y", "laplacian", "gaussian")


def _agreement(gray: np.ndarray) -> list[dict[str, object]]:
    """Max |difference| between our conv2d, the naive loops and torch, on a crop of the photo."""
    import torch
    import torch.nn.functional as F

    crop = gray[100:148, 200:248]
    rows = []
    for name in ("vertical_line", "sobel_x", "laplacian"):
        w = get_kernel(name)
        ours, naive = conv2d(crop, w), conv2d_naive(crop, w)
        ref = F.conv2d(torch.from_numpy(crop)[None, None], torch.from_numpy(w)[None, None])
        rows.append(
            {
                "kernel": name,
                "|vectorized - loops|": f"{np.abs(ours - naive).max():.1e}",
                "|vectorized - torch|": f"{np.abs(ours - ref[0, 0].numpy()).max():.1e}",
            }
        )
    return rows


def convolution_chapter(ctx: TourContext) -> Chapter:
    x, w = lecture_image(), get_kernel("vertical_line")
    out = conv2d(x, w)
    viz.save_figure(
        viz.matrices_figure([("input 5x6", x), ("kernel 3x3", w), ("output 3x4", out)]),
        ctx.out / "ch1_toy.png",
    )
    photo = sample_photo("china")
    if ctx.quick:
        photo = photo[::2, ::2]
    gray = to_grayscale(photo)
    outputs = {name: conv2d(gray, get_kernel(name)) for name in PHOTO_KERNELS}
    viz.save_figure(viz.filtered_grid_figure(gray, outputs), ctx.out / "ch1_photo.png")
    viz.save_figure(
        viz.side_by_side_figure(gray, w, outputs["vertical_line"], "vertical_line"),
        ctx.out / "ch1_vertical.png",
    )
    checks = _agreement(gray)
    body = "\n".join(
        [
            paragraph(
                "A K x K kernel slides over a W x H image; each output element is the dot "
                "product of the kernel with the window under it, so the output is "
                "(W-K+1) x (H-K+1). The lecture's kernel has columns -1, 2, -1: it answers "
                "strongly where a bright vertical line sits between darker columns."
            ),
            pre(edge_detector_text()),
            figure("ch1_toy.png", "The toy image, the vertical-line kernel and its output."),
            paragraph(
                "The same kernels on a real photo (scikit-learn's bundled china.jpg, in "
                "grayscale). Red is a positive response, blue a negative one."
            ),
            figure("ch1_photo.png", "Classic kernels on a photo, computed by antlers.conv.conv2d."),
            figure("ch1_vertical.png", "The vertical-line detector on the photo."),
            paragraph(
                "Our vectorized conv2d against the loops of the definition and against "
                "torch.nn.functional.conv2d, on a 48x48 crop:"
            ),
            table(checks),
        ]
    )
    summary = f"edge detector output row {out[1].astype(int).tolist()}, {len(outputs)} kernels"
    return Chapter(1, "Convolution", body, summary)
