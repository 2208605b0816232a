"""What a channel looks for: the test images that excite it most, computed on request (view 3).

* ``channels_view``: the layers whose output is a feature map (B, C, H, W), with C, in order.
* ``TopKJobs.answer(run, layer, channel, k)``: when ``RUN/explain/topk-LAYER.safetensors``
  exists (and was computed from the weights served), the channel's ``k`` best images from it;
  otherwise the first request starts one pass over the run's test images (at most
  ``MAX_IMAGES``) in a background thread, ``explain.top_k_activations`` for every channel at
  once, and every request answers ``{"pending": true, "done", "total"}`` (HTTP 202) until the
  file is written. The pass runs on a copy of the model, so the served model stays free.

The cache file holds tensors only (safetensors: values (C, K), indices (C, K), windows (C, K, 4))
and, as metadata, the layer, the number of images and the weights file's size and mtime.
"""

from __future__ import annotations

import copy
import re
import threading
from pathlib import Path
from typing import Any

from antlers.serve.pictures import tensor_url
from antlers.serve.security import ApiError

__all__ = ["BATCH", "KEEP", "MAX_IMAGES", "TopKJobs", "cache_path", "channels_view"]

MAX_IMAGES = 10_000  # test images searched (Fashion-MNIST's whole test split)
KEEP = 16  # images kept per channel in the cache; a request shows k <= KEEP of them
BATCH = 250  # images per forward pass: the progress moves in these steps


def channels_view(run: Any) -> list[dict[str, Any]]:
    """[{"layer", "channels"}] for every layer with a (B, C, H, W) output, in forward order."""
    import torch

    from antlers.explain.layers import capture, spatial_layers

    c, (h, w) = run.model_config.in_channels, run.model_config.image_size
    names = [name for name, _ in spatial_layers(run.model)]
    with torch.no_grad():
        outputs = capture(run.model, torch.zeros(1, c, h, w), names)
    return [
        {"layer": n, "channels": int(outputs[n].shape[1])}
        for n in names
        if n in outputs and outputs[n].dim() == 4
    ]


def cache_path(run: Any, layer: str) -> Path:
    """Where the top-k of ``layer`` is kept, inside the run folder."""
    return run.path / "explain" / f"topk-{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}.safetensors"


def _stamp(run: Any) -> str:
    """The weights file's size and mtime: a cache computed from other weights is not used."""
    stat = run.weights_path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


class TopKJobs:
    """The passes in progress, by (run path, layer), and the test images of each run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._images: dict[str, tuple[Any, Any]] = {}

    def answer(self, loaded: Any, layer: str, channel: int, k: int) -> dict[str, Any]:
        """The channel's top ``k``, or ``{"pending": True, "done", "total"}``; ApiError 422 for
        an unknown layer or channel, 400 when the pass failed (e.g. no test images)."""
        run = loaded.run
        layers = {e["layer"]: e["channels"] for e in self._channels(loaded)}
        if layer not in layers:
            raise ApiError(422, f"layer {layer!r} has no feature map; allowed: {', '.join(layers)}")
        if not 0 <= channel < layers[layer]:
            raise ApiError(422, f"channel {channel}: {layer} has channels 0 to {layers[layer] - 1}")
        cached = self._read(run, layer)
        if cached is not None:
            return self._pictures(run, layer, channel, k, cached)
        return self._progress(loaded, layer)

    def _channels(self, loaded: Any) -> list[dict[str, Any]]:
        with loaded.lock:
            return channels_view(loaded.run)

    def _read(self, run: Any, layer: str) -> dict[str, Any] | None:
        from safetensors import safe_open

        path = cache_path(run, layer)
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("weights") != _stamp(run):
                return None
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)

    def _progress(self, loaded: Any, layer: str) -> dict[str, Any]:
        key = (str(loaded.run.path), layer)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                with loaded.lock:
                    model = copy.deepcopy(loaded.run.model)
                job = {"done": 0, "total": None, "error": None, "status": 400}
                job["thread"] = threading.Thread(
                    target=self._search, args=(loaded.run, model, layer, job), daemon=True
                )
                self._jobs[key] = job
                job["thread"].start()
            if job["error"] is not None:
                del self._jobs[key]  # the next request tries again
                raise ApiError(job["status"], job["error"])
            return {"pending": True, "done": job["done"], "total": job["total"]}

    def wait(self) -> None:
        """Wait for every pass in progress (tests, and a clean shutdown)."""
        for job in list(self._jobs.values()):
            job["thread"].join()

    def _search(self, run: Any, model: Any, layer: str, job: dict[str, Any]) -> None:
        """The background pass: the top-``KEEP`` of every channel, saved to the cache."""
        from safetensors.torch import save

        from antlers.explain import top_k_activations
        from antlers.io.files import atomic_write

        try:
            images, _ = self._test_images(run)
            job["total"] = len(images)

            def batches() -> Any:
                for start in range(0, len(images), BATCH):
                    yield images[start : start + BATCH]
                    job["done"] = min(len(images), start + BATCH)

            found = top_k_activations(model, layer, batches(), k=KEEP)
            tensors = {"values": found.values, "indices": found.indices, "windows": found.windows}
            meta = {"layer": layer, "images": str(len(images)), "weights": _stamp(run)}
            atomic_write(cache_path(run, layer), save(tensors, metadata=meta))
        except (ValueError, OSError) as error:
            job["error"], job["status"] = str(error), 400
        except Exception as error:  # a bug: said once, not started again at every poll
            kind = type(error).__name__
            job["error"], job["status"] = f"the top-images pass failed ({kind}: {error})", 500
        finally:
            with self._lock:
                if job["error"] is None:
                    self._jobs.pop((str(run.path), layer), None)

    def _test_images(self, run: Any) -> tuple[Any, Any]:
        """uint8 (N, C, H, W) test images at the model's size and their labels, kept."""
        from antlers.explain.report import run_subject, test_images

        key = str(run.path)
        if key not in self._images:
            self._images[key] = test_images(run_subject(run), MAX_IMAGES)
        return self._images[key]

    def _pictures(
        self, run: Any, layer: str, channel: int, k: int, cached: dict[str, Any]
    ) -> dict[str, Any]:
        """{"layer", "channel", "images": [{"index", "label", "value", "window", "image",
        "patch"}]}: best first; ``window`` (y0, y1, x0, x1) is the receptive field in the
        image, ``patch`` that window cut out (grey outside the image)."""
        from antlers.explain.topk import crop_window

        images, labels = self._test_images(run)
        shown = []
        for rank in range(min(k, cached["values"].shape[1])):
            index = int(cached["indices"][channel, rank])
            window = cached["windows"][channel, rank]
            image = images[index].float() / 255
            shown.append(
                {
                    "index": index,
                    "label": run.classes[int(labels[index])],
                    "value": round(float(cached["values"][channel, rank]), 4),
                    "window": [int(v) for v in window],
                    "image": tensor_url(image),
                    "patch": tensor_url(crop_window(image, window)),
                }
            )
        return {"layer": layer, "channel": channel, "images": shown}
