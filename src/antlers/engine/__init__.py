"""The training engine shared by every task: ``fit``, checkpoints, schedules, loaders, DDP."""

from antlers.engine.checkpoint import CheckpointError, load_state, load_weights
from antlers.engine.fit import FitResult, NonFiniteLossError, fit

__all__ = [
    "CheckpointError",
    "FitResult",
    "NonFiniteLossError",
    "fit",
    "load_state",
    "load_weights",
]
