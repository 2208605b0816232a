"""Run under ``torchrun --max-restarts 1`` by tests/test_elastic.py: train the classify task as
the TrainConfig in the file CONFIG_JSON says, and on the first start (not on torchrun's restart)
let rank 1 SIGKILL itself in training step KILL_AT.

``elastic_worker.py CONFIG_JSON [KILL_AT]``
"""

import os
import signal
import sys
from pathlib import Path

import torch

from antlers.config import TrainConfig
from antlers.engine.elastic import restart_count
from antlers.engine.fit import fit
from antlers.tasks import get_task


def dying(task, kill_at: int):
    """``task`` whose loss kills the process the ``kill_at``-th time it is called (0-based)."""
    base, calls = type(task), [0]

    class Dying(base):
        def loss(self, model, batch):
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            calls[0] += 1
            return base.loss(self, model, batch)

    return Dying()


def main() -> None:
    config = TrainConfig.from_json(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)
    task = get_task("classify")
    first_start, rank = restart_count() == 0, int(os.environ["RANK"])
    if len(sys.argv) > 2 and first_start and rank == 1:
        task = dying(task, int(sys.argv[2]))
    fit(task, config, log=lambda line: print(f"rank {rank}: {line}", flush=True))


main()
