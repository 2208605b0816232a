"""Evaluate a trained run on its test data, and predict on image files (the CLI's eval/predict).

Both take a run folder or a ``.safetensors`` weights file; the weights' metadata says which task,
model and classes, so nothing else is needed. The task does the work (``test_loader``,
``evaluate``, ``predict_files``); this module only reads the user's files safely.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from antlers.run import Run

__all__ = ["evaluate_run", "predict_files", "read_images"]


def evaluate_run(
    run: str | Path, data: str | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """Test-split metrics of a run (its own dataset unless ``data`` names another)."""
    loaded = Run.load(run)
    name = data or loaded.meta["data"]
    loader = loaded.task.test_loader(loaded.meta, name, data_dir)
    with torch.no_grad():
        metrics = loaded.task.evaluate(loaded.model, loader)
    metrics["count"] = int(metrics["count"])
    return {"data": name, "weights": str(loaded.weights_path), **metrics}


def read_images(paths: list[str]) -> list[Any]:
    """PIL images for ``paths``, fully read; a missing or unreadable file: ValueError naming it."""
    from PIL import Image, UnidentifiedImageError

    pictures = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path}: cannot read as an image ({error})") from error
    return pictures


def predict_files(
    run: str | Path, images: list[str], out: str | Path | None = None, **options: Any
) -> list[dict[str, Any]]:
    """One JSON-able dict per image file, with a ``text`` line for the terminal; tasks that
    draw their predictions (masks, boxes) write them into ``out``."""
    loaded = Run.load(run)
    return loaded.task.predict_files(loaded, images, Path(out) if out else None, **options)
