"""The tasks, by name: one explicit dict, no decorator registry.

Every task follows the same contract (DESIGN.md, "The task contract")::

    name, primary_metric, maximize                    # maximize: is a larger metric better?
    config_defaults: dict                             # TrainConfig fields set differently
    load_data(config, rank, world_size) -> TaskData   # loaders for this process + model meta
    build_model(meta) -> nn.Module                    # meta alone rebuilds the model
    loss(model, batch, **options) -> dict[str, Tensor]  # holds "loss"; other entries are logged
    predict(model, images) -> ...                     # inference only
    evaluate(model, loader) -> dict[str, float]       # this process's shard, with its "count"
    report(run_dir, model, data) -> dict              # task figures at the end of training
    test_loader(meta, data, data_dir) -> loader       # the test split for ``antlers eval``
    run_predict(run, images) -> ...                   # what ``Run.predict`` returns
    predict_files(run, paths, out, **options) -> list[dict]  # ``antlers predict``: JSON-able rows

A loader has ``epoch(e, start_batch) -> Iterator[dict]``, ``batches_per_epoch()`` and
``num_samples``; its batches are dicts of tensors (or lists of tensors, e.g. boxes per image).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TASKS", "TASK_NAMES", "default_config", "get_task"]

# task name -> (module, class); the module is imported only when the task is used.
TASKS: dict[str, tuple[str, str]] = {
    "classify": ("antlers.tasks.classify", "ClassifyTask"),
    "segment": ("antlers.tasks.segment", "SegmentTask"),
    "generate": ("antlers.tasks.generate", "GenerateTask"),
    "detect": ("antlers.tasks.detect", "DetectTask"),
}
TASK_NAMES = tuple(TASKS)


def get_task(name: str) -> Any:
    """The task object for ``name``; ValueError lists the known tasks."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)()


def default_config(task: str, **options: Any) -> Any:
    """A TrainConfig for ``task``: its own defaults (``config_defaults``), then ``options``."""
    from antlers.config import TrainConfig

    defaults = getattr(get_task(task), "config_defaults", {})
    return TrainConfig(task=task, **{**defaults, **options})
