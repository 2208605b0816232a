"""The Segment, Detect and Generate views: each task's own pictures, from the task's own code.

* ``segment_view``: ``Run.predict``'s class-id mask drawn over the image
  (``tasks.segment.predict.overlay``), with the legend of the classes present and their shares.
* ``detect_view``: the detector's stages on the image at the model's size (``model.stages``:
  the best candidates, the proposals kept by NMS, each proposal's class or "nothing", the
  detections after per-class NMS), every score included so the page's slider can filter them.
* ``sample_view``: ``Run.sample_with_trajectory`` (DDIM): the samples and every frame of the
  denoising trajectory as PNGs.
Callers hold the model's lock.
"""

from __future__ import annotations

from typing import Any

from antlers.serve.pictures import tensor_url

__all__ = ["MAX_SAMPLES", "MAX_STEPS", "detect_view", "sample_view", "segment_view"]

MAX_SAMPLES = 16
MAX_STEPS = 250
CANDIDATES_SHOWN = 60


def segment_view(run: Any, picture: Any) -> dict[str, Any]:
    """{"overlay": PNG, "size": [H, W], "legend": [{label, colour, share}] largest first}."""
    from antlers.io.images import image_to_tensor
    from antlers.tasks.segment.predict import overlay, palette
    from antlers.viz.images import to_uint8

    x = image_to_tensor(picture, run.model_config.in_channels)
    result = run.predict(x[None])
    colours = dict(zip(run.classes, palette(run.classes), strict=True))
    legend = [
        {"label": name, "colour": "#{:02x}{:02x}{:02x}".format(*colours[name]), "share": share}
        for name, share in result.shares(0).items()
    ]
    drawn = overlay(to_uint8(x), result.masks[0], run.classes)
    return {"overlay": tensor_url(drawn), "size": list(result.masks.shape[1:]), "legend": legend}


def _boxes(boxes: Any) -> list[list[float]]:
    return [[round(float(v), 1) for v in box] for box in boxes]


def detect_view(run: Any, picture: Any) -> dict[str, Any]:
    """The stages at the model's S x S: {"image": PNG, "size": S, "candidates": [{box, score}],
    "proposals": [{box, score}], "classified": [{box, label ("nothing" for the background),
    score}], "detections": [{box, label, score}]}, scores in [0, 1]."""
    from antlers.io.images import image_to_tensor, prepare_image

    s = run.model_config.image_size[0]
    x = image_to_tensor(prepare_image(picture, 3), 3, (s, s), resize="stretch")
    (stages,) = run.model.stages(x[None])
    p, c, d = stages.proposals, stages.classified, stages.detections
    names = ["nothing", *run.classes]

    def rows(boxes: Any, scores: Any, labels: Any = None) -> list[dict[str, Any]]:
        found = []
        for i, (box, score) in enumerate(zip(_boxes(boxes), scores.tolist(), strict=True)):
            row = {"box": box, "score": round(score, 4)}
            if labels is not None:
                row["label"] = names[int(labels[i]) + 1]
            found.append(row)
        return found

    return {
        "image": tensor_url(x),
        "size": s,
        "candidates": rows(p.candidates[:CANDIDATES_SHOWN], p.candidate_scores[:CANDIDATES_SHOWN]),
        "proposals": rows(p.boxes, p.scores),
        "classified": rows(c.boxes, c.scores, c.labels),
        "detections": rows(d["boxes"], d["scores"], d["labels"]),
    }


def sample_view(
    run: Any, label: str | None, guidance: float, steps: int, seed: int, n: int
) -> dict[str, Any]:
    """{"samples": [PNG], "frames": [{"t", "images": [PNG]}]} for ``n`` images of ``label``
    (None: each class in turn) with DDIM in ``steps`` steps, ``guidance`` and ``seed``."""
    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError(f"n must be 1 to {MAX_SAMPLES}, got {n}")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be 1 to {MAX_STEPS}, got {steps}")
    if not 0 <= guidance <= 20:
        raise ValueError(f"guidance must be 0 to 20, got {guidance}")
    result = run.sample_with_trajectory(
        n, sampler="ddim", steps=steps, label=label, guidance=guidance, seed=seed
    )
    frames = [
        {"t": int(t), "images": [tensor_url(im) for im in frame]}
        for t, frame in zip(result.trajectory_t, result.trajectory, strict=True)
    ]
    return {"samples": [tensor_url(im) for im in result.images], "frames": frames}
