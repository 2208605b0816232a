"""Tour chapter 3: backprop learns the features.

The NumPy CNN of :mod:`antlers.conv.numpy_cnn` (conv -> ReLU -> max pool -> fully connected ->
softmax) trained by its hand-written backward pass on scikit-learn's 8x8 digits: the loss going
down, the held-out accuracy, and the kernels that gradient descent tuned from random starts.
"""

from __future__ import annotations

from antlers.conv.numpy_cnn import train_digits
from antlers.tour.page import Chapter, TourContext, figure, paragraph
from antlers.viz import figures as viz

__all__ = ["backprop_chapter"]


def backprop_chapter(ctx: TourContext) -> Chapter:
    from antlers.explain.figures import kernels_figure  # torch, imported when the chapter runs

    epochs = 4 if ctx.quick else 10

    def progress(epoch: int, loss: float, accuracy: float) -> None:
        ctx.log(f"      epoch {epoch}/{epochs}: loss {loss:.3f}, train accuracy {accuracy:.3f}")

    result = train_digits(epochs=epochs, seed=0, progress=progress)
    viz.save_figure(
        viz.curve_figure({"training loss": result.losses}, "step", "cross-entropy"),
        ctx.out / "ch3_loss.png",
    )
    viz.save_figure(
        kernels_figure(result.kernels[:, None], "learned 3x3 kernels"),
        ctx.out / "ch3_kernels.png",
    )
    body = "\n".join(
        [
            paragraph(
                "Gradient descent on the cross-entropy tunes every kernel: the backward pass "
                "of each layer (written by hand in NumPy, beside its forward pass, and checked "
                "against torch autograd in the tests) gives the gradient, SGD with momentum "
                "takes the step."
            ),
            paragraph(
                f"{epochs} epochs on scikit-learn's digits in {result.seconds:.1f} s: "
                f"held-out accuracy {result.test_accuracy:.1%} "
                f"(train {result.train_accuracy:.1%})."
            ),
            figure("ch3_loss.png", "Training loss, step by step."),
            figure("ch3_kernels.png", "First-layer kernels after training."),
        ]
    )
    summary = f"NumPy CNN on digits, held-out accuracy {result.test_accuracy:.1%}"
    return Chapter(3, "Backprop learns the features", body, summary)
