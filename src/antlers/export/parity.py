"""Is the exported graph the run's model? onnxruntime against PyTorch on a *different* input.

The file was traced with one input (``graphs.graph_spec``'s example); it is checked on another:
new pixels, and on every dynamic axis another length (batch 3 instead of 2, height + 5 and
width + 3), as torchvision's ONNX tests do to catch sizes baked into a graph. The reference is
the task's own inference code (``task.logits``, ``task.detections``, the denoiser), not the
exported wrapper. Tolerances: ``numpy.allclose``'s rule with rtol 1e-3 and atol 1e-5.
Detections are compared after matching each PyTorch box to the onnxruntime box of the same
label with the nearest score and coordinates (the order of near-equal scores may differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ATOL", "RTOL", "Parity", "check_parity", "compare", "match_detections"]

RTOL, ATOL = 1e-3, 1e-5
GROWTH = {"batch": 3, "height": 5, "width": 3}  # what a dynamic axis becomes (see above)


@dataclass(frozen=True)
class Parity:
    """``shape``: the input it was checked on; ``max_abs`` / ``max_rel``: the largest |ort -
    torch| and that divided by |torch| + atol; ``detections``: boxes compared (detect only)."""

    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool
    detections: int | None = None

    def __str__(self) -> str:
        where = "x".join(str(n) for n in self.shape)
        found = f", {self.detections} detections matched" if self.detections is not None else ""
        verdict = "equal" if self.ok else "NOT equal"
        return (
            f"onnxruntime vs PyTorch on another input ({where}{found}): max |diff| "
            f"{self.max_abs:.2e}, {verdict} at rtol {RTOL:g}, atol {ATOL:g}"
        )


def compare(ours: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float, bool]:
    """(max abs difference, max relative one, all close) over pairs of arrays."""
    worst_abs = worst_rel = 0.0
    ok = True
    for a, b in zip(ours, reference, strict=True):
        if a.shape != b.shape:
            return float("inf"), float("inf"), False
        if a.size == 0:
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst_abs = max(worst_abs, float(diff.max()))
        worst_rel = max(worst_rel, float((diff / (np.abs(b) + ATOL)).max()))
        ok = ok and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))
    return worst_abs, worst_rel, ok


def match_detections(
    ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Both sides' [boxes, scores, labels] in the reference's order: each reference detection
    (best score first) takes the unmatched one of ours with its label that is nearest in score
    and box. Unequal counts: the arrays as they are (``compare`` then reports a mismatch)."""
    keys = ("boxes", "scores", "labels")
    if len(ours["scores"]) != len(reference["scores"]):
        return [ours[k] for k in keys], [reference[k] for k in keys]
    order = np.argsort(-reference["scores"], kind="stable")
    free = np.ones(len(ours["scores"]), dtype=bool)
    picked = []
    for i in order:
        distance = np.abs(ours["scores"] - reference["scores"][i]) + np.abs(
            ours["boxes"] - reference["boxes"][i]
        ).max(axis=1)
        distance[~free | (ours["labels"] != reference["labels"][i])] = np.inf
        j = int(np.argmin(distance)) if free.any() else 0
        free[j] = False
        picked.append(j)
    return [ours[k][picked] for k in keys], [reference[k][order] for k in keys]


def parity_inputs(run: Any, session: Any) -> dict[str, Tensor]:
    """Inputs unlike the example the graph was traced with: new values, and dynamic axes
    (named, not numbered, in the file) grown as ``GROWTH`` says."""
    g = torch.Generator().manual_seed(1)
    shape = []
    for axis, length in enumerate(session.get_inputs()[0].shape):
        if isinstance(length, int):
            shape.append(length)
        elif axis == 0:
            shape.append(GROWTH["batch"])
        else:
            shape.append(run.model_config.image_size[axis - 2] + GROWTH[length])
    images = torch.rand(*shape, generator=g)
    if run.task.name != "generate":
        return {"images": images}
    n, classes = shape[0], len(run.classes)
    return {
        "images": images * 2 - 1,
        "timesteps": torch.randint(0, run.model_config.timesteps, (n,), generator=g),
        "labels": torch.arange(n) % (classes + 1) - 1,  # -1: the null class, then each class
    }


@torch.no_grad()
def reference_outputs(run: Any, inputs: dict[str, Tensor]) -> list[np.ndarray]:
    """What the run's PyTorch model computes for ``inputs``, in the graph's output order."""
    model, name = run.model.eval(), run.task.name
    if name in ("classify", "segment"):
        return [run.task.logits(model, inputs["images"]).numpy()]
    if name == "detect":
        found = run.task.detections(model, inputs["images"])[0]
        return [found[k].numpy() for k in ("boxes", "scores", "labels")]
    return [model(inputs["images"], inputs["timesteps"], inputs["labels"]).numpy()]


def check_parity(run: Any, session: Any) -> Parity:
    """onnxruntime's ``session`` (the exported file) against ``run``'s PyTorch model."""
    inputs = parity_inputs(run, session)
    ours = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    reference = reference_outputs(run, inputs)
    count = None
    if run.task.name == "detect":
        keys = ("boxes", "scores", "labels")
        ours, reference = match_detections(
            dict(zip(keys, ours, strict=True)), dict(zip(keys, reference, strict=True))
        )
        count = len(reference[1])
    worst_abs, worst_rel, ok = compare(ours, reference)
    return Parity(tuple(inputs["images"].shape), worst_abs, worst_rel, ok, count)
