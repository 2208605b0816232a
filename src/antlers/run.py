"""``antlers.train`` and ``Run``: a trained model with its folder, metrics and predictions.

>>> run = antlers.train("classify", data="digits", epochs=2)      # doctest: +SKIP
>>> run.metrics[-1]["val_accuracy"]                                # doctest: +SKIP
>>> run.predict(images).labels                                     # doctest: +SKIP
>>> antlers.Run.load("runs/classify/exp")                          # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.config import TrainConfig, load_run_config
from antlers.engine.checkpoint import CheckpointError, load_weights, one_line
from antlers.tasks import default_config, get_task

__all__ = ["Run", "check_resumed_task", "train"]


def train(task: str | None = None, resume: str | Path | None = None, **options: Any) -> Run:
    """Train a model of ``task`` (classify when not given); ``options`` are TrainConfig fields
    (data=, model=, epochs=, time=, ...).

    With ``resume`` (a run folder) the run continues from its last state; options given here
    override its saved config (a larger ``epochs`` extends a finished run). A ``task`` other than
    the run's is a ValueError.
    """
    from antlers.engine.fit import fit

    if resume is not None:
        saved = load_run_config(resume)
        check_resumed_task(resume, saved, task)
        config = saved.replace(**options)
    else:
        config = default_config(task or "classify", **options)
    result = fit(get_task(config.task), config, resume=resume)
    if result.stopped_by in ("max_steps", "signal") and not result.history:
        raise CheckpointError(
            f"{result.run_dir}: stopped ({result.stopped_by}) before the first epoch ended: "
            "no weights yet (an epoch's end writes them); state/last.pt is saved and "
            "train(resume=...) continues from it"
        )
    return Run.load(result.run_dir, stopped_by=result.stopped_by)


def check_resumed_task(run_dir: str | Path, saved: TrainConfig, task: str | None) -> None:
    """ValueError when asked to resume ``run_dir`` as another ``task`` than it was trained as."""
    if task is not None and task != saved.task:
        raise ValueError(
            f"{run_dir} is a {saved.task!r} run, not {task!r}: "
            f"antlers train {saved.task} --resume {run_dir}"
        )


class Run:
    """A run folder (or a lone weights file) loaded for inference and inspection.

    ``model_config`` (the task's ModelConfig) rebuilt ``model``; ``config`` is the TrainConfig the
    run was trained with (None for a weights file written by something else); ``epoch`` is the
    epoch the weights come from."""

    def __init__(self, path: Path, weights: Path, stopped_by: str | None = None):
        self.path = path
        self.weights_path = weights
        self.stopped_by = stopped_by
        state, meta = load_weights(weights)
        try:
            task = get_task(meta["task"])
            self.epoch: int | None = meta.pop("epoch", None)
            saved = meta.pop("config", None)
            self.config: TrainConfig | None = TrainConfig.from_json(saved) if saved else None
            self.model_config = task.config_type.from_dict(meta)
            # the task's options as trained (a lone weights file: as its model name implies)
            given = self.config or TrainConfig(task=task.name, model=self.model_config.model)
            self.task = task.configure(given)
            self.classes: list[str] = list(self.model_config.classes)
            self.model: nn.Module = self.task.build_model(self.model_config)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = one_line(error)
            raise CheckpointError(f"{weights}: unusable antlers metadata ({problem})") from error
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(
                f"{weights}: the tensors do not fit the {self.model_config.model} model that its "
                f"metadata names ({one_line(error)})"
            ) from error
        if self.config is None or self.config.channels_last:  # as the trainer evaluated it
            self.model.to(memory_format=torch.channels_last)  # docs/experiments/cpu-layout.md
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

    def predict(self, images: Any) -> Any:
        """The task's predictions for a float batch (B, C, H, W) in [0, 1] or a list of PIL
        images: a ``Classification``, ``Segmentation`` or ``Detections`` (each with
        ``to_json()``). A generate run has no input image: ValueError pointing at ``sample``."""
        return self.task.predict(self.model, self.model_config, images)

    def evaluate(
        self,
        data: str | None = None,
        data_dir: str | None = None,
        split: str = "test",
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> dict[str, Any]:
        """Metrics on the ``split`` ("test", or "val": the images held out of the training split
        with the run's seed) of the run's own dataset, unless ``data`` names another:
        ``antlers eval``. Under torchrun every rank calls this with its ``rank`` and the
        ``world_size``, scores its shard, and all get the metrics pooled over the whole split."""
        name = data or self.model_config.data
        seed = self.config.seed if self.config else 0  # the splits the run was trained with
        loader = self.task.eval_loader(self.model_config, name, split, data_dir, seed)
        if world_size > 1:
            loader = dataclasses.replace(loader, rank=rank, world_size=world_size)
        with torch.no_grad():
            metrics = self.task.evaluate(self.model, loader)
        metrics["count"] = int(metrics["count"])
        return {"data": name, "split": split, "weights": str(self.weights_path), **metrics}

    @property
    def test_metrics(self) -> dict[str, float]:
        """metrics.json: the test split's scores of the model chosen on validation (``test_*``),
        that model's validation scores (``val_*``) and its ``epoch``; empty before the end."""
        file = self.path / "metrics.json"
        return json.loads(file.read_text()) if file.is_file() else {}

    def predict_files(
        self, paths: list[str], out: str | Path | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        """``antlers predict``: one JSON-able dict per image file, with a ``text`` line for the
        terminal; tasks that draw their predictions (masks, boxes) write them into ``out``."""
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
        prompt: str | None = None,
    ) -> Tensor:
        """Generate ``n`` images (n, C, H, W) in [0, 1] with a ``generate`` run: DDPM (all T
        steps) or DDIM (``steps``, ``eta``: 1 by default, 0 for the deterministic DDIM, see
        ``generate.sampling.DEFAULT_ETA``); ``label`` (a class name or index) conditions every
        sample on that class with classifier-free ``guidance``; None cycles through the classes.
        A caption run (``--data captions``) draws what ``prompt`` says ("" is unconditional).
        The same ``seed`` gives the same images. ValueError for runs of other tasks."""
        return self.sample_with_trajectory(
            n, sampler=sampler, steps=steps, eta=eta, label=label, guidance=guidance, seed=seed,
            prompt=prompt,
        ).images  # fmt: skip

    def sample_with_trajectory(self, n: int = 64, **options: Any) -> Any:
        """Like ``sample``, but the whole ``generate.sampling.Sample`` (images, trajectory)."""
        if self.task.name != "generate":
            raise ValueError(
                f"{self.weights_path}: Run.sample needs a 'generate' run, this is a "
                f"{self.task.name!r} run"
            )
        prompt, label = options.pop("prompt", None), options.pop("label", None)
        if prompt is not None:
            labels = self.task.prompt_tokens(self.model_config, n, prompt)
        else:
            labels = self.task.labels_for(self.classes, n, label)
        return self.task.sample(self.model, self.model_config, labels, **options)
