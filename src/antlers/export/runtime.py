"""An exported file run through onnxruntime, with the same results as ``Run`` for the run folder.

:class:`OnnxModel` puts the ONNX graph where the PyTorch network was: an ``nn.Module`` whose
forward calls onnxruntime. The task's own inference code (resizing, softmax, mask PNGs, box
scaling, the diffusion samplers) then runs around it unchanged, so ``antlers predict model.onnx``
prints what ``antlers predict RUN`` prints, up to the graph's float differences.
:class:`OnnxRun` is ``Run``'s inference half for such a file: ``predict``, ``predict_files``,
``sample``. The task and its model config come from the file's metadata (``metadata.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.export.exporter import ExportError, require_onnx
from antlers.tasks import get_task

__all__ = ["OnnxModel", "OnnxRun"]


class OnnxModel(nn.Module):
    """The graph of ``path`` as a module: what the task's model returns, from onnxruntime.

    ``tta_flip`` is False (and ``tta_shift`` unset): a graph averages its views itself. The
    zero-size parameter is only there because the tasks find a model's device through its
    parameters (always the CPU)."""

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's errors derive from Exception alone
            raise ExportError(f"{path}: not a loadable ONNX file ({error})") from None
        self.metadata: dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.task_name = self.metadata.get("task", "")
        self.classes = tuple(json.loads(self.metadata.get("classes", "[]")))
        self.tta_flip = False
        self.device_anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def run(self, **inputs: Tensor) -> list[np.ndarray]:
        """The graph's outputs for ``inputs`` (names as in the file)."""
        return self.session.run(None, {k: v.detach().cpu().numpy() for k, v in inputs.items()})

    def forward(
        self, images: Tensor, timesteps: Tensor | None = None, labels: Tensor | None = None
    ) -> Any:
        """classify / segment: logits; detect: a dict of boxes, labels, scores per image (the
        graph takes one image at a time); generate: the predicted noise (labels None: null)."""
        if self.task_name == "detect":
            return [self._detect(image[None]) for image in images]
        if self.task_name == "generate":
            if labels is None:
                labels = torch.full((len(images),), -1, dtype=torch.long)
            out = self.run(images=images.float(), timesteps=timesteps.long(), labels=labels.long())
            return torch.from_numpy(out[0])
        return torch.from_numpy(self.run(images=images.float())[0])

    def _detect(self, image: Tensor) -> dict[str, Tensor]:
        boxes, scores, labels = (torch.from_numpy(a) for a in self.run(images=image.float()))
        return {"boxes": boxes, "labels": labels, "scores": scores}


class OnnxRun:
    """An exported ``model.onnx`` loaded for inference: ``predict``, ``predict_files`` and
    ``sample`` as ``Run`` has them. ``path`` is the file's folder (where ``sample`` writes by
    default), ``weights_path`` the file."""

    def __init__(self, path: str | Path, threads: int | None = None):
        require_onnx()
        self.weights_path = Path(path)
        if not self.weights_path.is_file():
            raise ExportError(f"{path}: no such file")
        self.path = self.weights_path.parent
        self.model = OnnxModel(self.weights_path, threads).eval()
        meta = self.model.metadata
        try:
            task = get_task(meta["task"])
            self.model_config = task.config_type.from_dict(json.loads(meta["model_config"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(
                f"{path}: not exported by antlers export (metadata: {error})"
            ) from None
        self.task = task.configure(TrainConfig(task=task.name, model=self.model_config.model))
        self.classes: list[str] = list(self.model_config.classes)

    @classmethod
    def load(cls, path: str | Path) -> OnnxRun:
        return cls(path)

    def predict(self, images: Any) -> Any:
        """As ``Run.predict``: a ``Classification``, ``Segmentation`` or ``Detections``."""
        return self.task.predict(self.model, self.model_config, images)

    def predict_files(
        self, paths: list[str], out: str | Path | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        """As ``Run.predict_files`` (``antlers predict model.onnx IMAGE...``)."""
        out = Path(out) if out else None
        return self.task.predict_files(self.model, self.model_config, paths, out, **options)

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
        """As ``Run.sample``, with the exported denoiser: images (n, C, H, W) in [0, 1]."""
        return self.sample_with_trajectory(
            n, sampler=sampler, steps=steps, eta=eta, label=label, guidance=guidance, seed=seed
        ).images

    def sample_with_trajectory(self, n: int = 64, **options: Any) -> Any:
        """As ``Run.sample_with_trajectory``: the whole ``generate.sampling.Sample``."""
        if self.task.name != "generate":
            raise ValueError(
                f"{self.weights_path}: sampling needs a 'generate' export, "
                f"this is a {self.task.name!r} one"
            )
        labels = self.task.labels_for(self.classes, n, options.pop("label", None))
        return self.task.sample(self.model, self.model_config, labels, **options)
