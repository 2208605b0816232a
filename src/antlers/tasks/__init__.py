"""The tasks, by name: one explicit dict, no decorator registry.

Every task satisfies the contract in ``antlers.tasks.base`` (``Task``, a ``typing.Protocol``):
``configure(config)``, ``load_data(config, rank, world_size) -> TaskData``,
``build_model(model_config)``, ``loss(model, batch)``, ``evaluate(model, loader)``,
``predict(model, model_config, images)`` (one result type per task, each with ``to_json()``),
``eval_loader``, ``predict_files`` and ``report``. Each task is a package with the same role
files: ``task.py`` (the contract), ``models.py`` / ``model.py`` / ``unet.py``, ``loader.py``,
``metrics.py``, ``predict.py``, ``report.py`` and ``figures.py``, where the role exists.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from antlers.config import TrainConfig
    from antlers.tasks.base import Task

__all__ = ["TASKS", "TASK_NAMES", "default_config", "get_task"]

# task name -> (module, class); the module is imported only when the task is used.
TASKS: dict[str, tuple[str, str]] = {
    "classify": ("antlers.tasks.classify", "ClassifyTask"),
    "segment": ("antlers.tasks.segment", "SegmentTask"),
    "generate": ("antlers.tasks.generate", "GenerateTask"),
    "detect": ("antlers.tasks.detect", "DetectTask"),
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> Task:
    """The task object for ``name`` with its default options; ValueError lists the known tasks."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)()


def default_config(task: str, **options: Any) -> TrainConfig:
    """A TrainConfig for ``task``: its own defaults (``config_defaults``), those for the data
    it trains on (``data_defaults``, by ``options``' data or the task's default data), then
    ``options``."""
    from antlers.config import TrainConfig

    spec = get_task(task)
    data = options.get("data") or spec.config_defaults.get("data")
    for_data = spec.data_defaults.get(data, {})
    return TrainConfig(task=task, **{**spec.config_defaults, **for_data, **options})
