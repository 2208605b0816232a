"""The tasks, by name: one explicit dict, no decorator registry.

Every task follows the same contract (DESIGN.md, "The task contract")::

    load_data(config, rank, world_size) -> TaskData   # loaders for this process + model meta
    build_model(meta) -> nn.Module                    # meta alone rebuilds the model
    loss(model, batch, **options) -> dict[str, Tensor]  # holds "loss"; other entries are logged
    predict(model, images) -> ...                     # inference only
    evaluate(model, loader) -> dict[str, float]       # this process's shard, with its "count"
    report(run_dir, model, data) -> dict              # task figures at the end of training
"""

from __future__ import annotations

from typing import Any

__all__ = ["TASK_NAMES", "get_task"]

TASK_NAMES = ("classify",)


def get_task(name: str) -> Any:
    """The task object for ``name``; ValueError lists the known tasks."""
    if name == "classify":
        from antlers.tasks.classify import ClassifyTask

        return ClassifyTask()
    raise ValueError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
