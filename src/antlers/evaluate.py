"""Evaluate a trained run on a dataset, and predict labels for image files (the CLI's eval/predict).

Both take a run folder or a ``.safetensors`` weights file; the weights' metadata says which task,
model and classes, so nothing else is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from antlers.run import Run

__all__ = ["evaluate_run", "predict_files"]


def evaluate_run(
    run: str | Path, data: str | None = None, data_dir: str | None = None
) -> dict[str, Any]:
    """Test-split metrics of a run (its own dataset unless ``data`` names another)."""
    from antlers.data import load_dataset
    from antlers.engine.loader import TensorLoader

    loaded = Run.load(run)
    name = data or loaded.meta["data"]
    h, _ = loaded.meta["image_size"]
    test = load_dataset(name, "test", data_dir=data_dir, image_size=h)
    if list(test.classes) != loaded.classes:
        raise ValueError(
            f"{name}: its classes {list(test.classes)} differ from the model's {loaded.classes}"
        )
    with torch.no_grad():
        metrics = loaded.task.evaluate(loaded.model, TensorLoader(test.images, test.labels, 500))
    metrics["count"] = int(metrics["count"])
    return {"data": name, "weights": str(loaded.weights_path), **metrics}


def predict_files(run: str | Path, images: list[str], top: int = 3) -> list[dict[str, Any]]:
    """For each image file: its top-``top`` labels with probabilities."""
    from PIL import Image, UnidentifiedImageError

    loaded = Run.load(run)
    pictures = []
    for name in images:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path}: cannot read as an image ({error})") from error
    _, probabilities = loaded.predict(pictures)
    k = min(top, len(loaded.classes))
    values, indices = probabilities.topk(k, dim=1)
    return [
        {
            "image": name,
            "top": [
                {"label": loaded.classes[i], "probability": round(float(p), 4)}
                for p, i in zip(v, idx, strict=True)
            ],
        }
        for name, v, idx in zip(images, values, indices, strict=True)
    ]
