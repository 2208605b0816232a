"""``antlers.train`` and ``Run``: a trained model with its folder, metrics and predictions.

>>> run = antlers.train("classify", data="digits", epochs=2)      # doctest: +SKIP
>>> run.metrics[-1]["val_accuracy"]                                # doctest: +SKIP
>>> indices, probabilities = run.predict(images)                   # doctest: +SKIP
>>> antlers.Run.load("runs/classify/exp")                          # doctest: +SKIP
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.engine.checkpoint import CheckpointError, load_weights
from antlers.tasks import default_config, get_task

__all__ = ["Run", "evaluate_run", "predict_files", "train"]


def train(task: str = "classify", resume: str | Path | None = None, **options: Any) -> Run:
    """Train a model; ``options`` are TrainConfig fields (data=, model=, epochs=, time=, ...).

    With ``resume`` (a run folder) the run continues from its last state; options given here
    override its saved config (a larger ``epochs`` extends a finished run).
    """
    from antlers.engine.fit import fit

    if resume is not None:
        saved = TrainConfig.from_json((Path(resume) / "config.json").read_text())
        config = saved.replace(**options)
    else:
        config = default_config(task, **options)
    result = fit(get_task(config.task), config, resume=resume)
    return Run.load(result.run_dir, stopped_by=result.stopped_by)


class Run:
    """A run folder (or a lone weights file) loaded for inference and inspection."""

    def __init__(self, path: Path, weights: Path, stopped_by: str | None = None):
        self.path = path
        self.weights_path = weights
        self.stopped_by = stopped_by
        state, self.meta = load_weights(weights)
        self.task = get_task(self.meta["task"])
        self.classes: list[str] = list(self.meta["classes"])
        self.model: nn.Module = self.task.build_model(self.meta)
        self.model.load_state_dict(state)
        self.model.eval()

    @classmethod
    def load(cls, path: str | Path, stopped_by: str | None = None) -> Run:
        """A run folder (best weights, else last) or a ``.safetensors`` file."""
        path = Path(path)
        if path.is_file():
            return cls(path.parent, path, stopped_by)
        for name in ("best", "last"):
            weights = path / "weights" / f"{name}.safetensors"
            if weights.is_file():
                return cls(path, weights, stopped_by)
        raise CheckpointError(
            f"{path}: no weights/best.safetensors or weights/last.safetensors "
            f"(not a finished run folder?)"
        )

    @property
    def metrics(self) -> list[dict[str, float]]:
        """metrics.csv as a list of rows (numbers as floats)."""
        file = self.path / "metrics.csv"
        if not file.is_file():
            return []
        with file.open(newline="") as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_json(self.meta["config"])

    def predict(self, images: Tensor | Sequence[Any]) -> Any:
        """The task's predictions for a float batch (B, C, H, W) in [0, 1] or a list of PIL
        images. Classification: class indices (B,) and probabilities (B, K)."""
        return self.task.run_predict(self, images)

    def sample(
        self,
        n: int = 64,
        *,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 1.0,
        label: str | int | None = None,
        guidance: float = 3.0,
        seed: int = 0,
    ) -> Tensor:
        """Generate ``n`` images (n, C, H, W) in [0, 1] with a ``generate`` run: DDPM (all T
        steps) or DDIM (``steps``, ``eta``: 1 by default, 0 for the deterministic DDIM, see
        ``diffusion_sampling.DEFAULT_ETA``); ``label`` (a class name or index) conditions every
        sample on that class with classifier-free ``guidance``; None cycles through the classes.
        The same ``seed`` gives the same images. ValueError for runs of other tasks."""
        return self.sample_with_trajectory(
            n, sampler=sampler, steps=steps, eta=eta, label=label, guidance=guidance, seed=seed
        ).images

    def sample_with_trajectory(self, n: int = 64, **options: Any) -> Any:
        """Like ``sample``, but the whole ``diffusion_sampling.Sample`` (images, trajectory)."""
        if self.meta["task"] != "generate":
            raise ValueError(
                f"{self.weights_path}: Run.sample needs a 'generate' run, this is a "
                f"{self.meta['task']!r} run"
            )
        return self.task.run_sample(self, n, **options)

    def to_batch(self, images: Tensor | Sequence[Any]) -> Tensor:
        c, (h, w) = self.meta["in_channels"], self.meta["image_size"]
        if isinstance(images, Tensor):
            if images.ndim != 4 or images.shape[1] != c:
                raise ValueError(
                    f"images must be (B, {c}, H, W) floats in [0, 1], "
                    f"got shape {tuple(images.shape)}"
                )
            if images.shape[2:] != (h, w):
                images = torch.nn.functional.interpolate(
                    images.float(), size=(h, w), mode="bilinear", antialias=True
                )
            return images.float()
        return torch.stack([_pil_to_tensor(im, c, (h, w)) for im in images])


def evaluate_run(
    run: str | Path, data: str | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """Test-split metrics of a run folder or weights file (its own dataset unless ``data``
    names another): ``antlers eval``."""
    loaded = Run.load(run)
    name = data or loaded.meta["data"]
    loader = loaded.task.test_loader(loaded.meta, name, data_dir)
    with torch.no_grad():
        metrics = loaded.task.evaluate(loaded.model, loader)
    metrics["count"] = int(metrics["count"])
    return {"data": name, "weights": str(loaded.weights_path), **metrics}


def predict_files(
    run: str | Path, images: list[str], out: str | Path | None = None, **options: Any
) -> list[dict[str, Any]]:
    """``antlers predict``: one JSON-able dict per image file, with a ``text`` line for the
    terminal; tasks that draw their predictions (masks, boxes) write them into ``out``."""
    loaded = Run.load(run)
    return loaded.task.predict_files(loaded, images, Path(out) if out else None, **options)


def _pil_to_tensor(image: Any, channels: int, size: tuple[int, int]) -> Tensor:
    """A PIL image -> float (C, H, W) in [0, 1], converted and fitted as the training data was."""
    import numpy as np
    from PIL import ImageOps

    from antlers.data.folder import to_8bit

    image = to_8bit(ImageOps.exif_transpose(image)).convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (size[1], size[0]))
    array = np.asarray(image, dtype=np.float32).reshape(size[0], size[1], channels) / 255
    return torch.from_numpy(array).permute(2, 0, 1)
