"""Run under torchrun by tests/test_engine_ddp.py: train the classify task (or the one the
environment's ANTLERS_TEST_TASK names), then write this rank's
parameters (OUT/rank<r>.pt) and how its run ended (OUT/rank<r>.json), OUT being the config's out.

``ddp_worker.py CONFIG_JSON`` trains as the TrainConfig in the file CONFIG_JSON says, on the
engine's own clock. ``ddp_worker.py CONFIG_JSON TICK0,TICK1`` replaces the clock the engine reads
with one that stands still except in training steps, where it advances by TICK<rank> seconds: the
ranks' clocks then disagree by a known amount (as when rank 0 loses time writing checkpoints),
without sleeping, so the test knows at which step a time budget must end.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

import antlers.engine.trainer
from antlers.config import TrainConfig
from antlers.engine.fit import fit
from antlers.tasks import get_task


class StepClock:
    """A stand-in for the ``time`` module the trainer reads: ``perf_counter`` is the time of
    the steps taken so far, ``tick`` seconds each."""

    def __init__(self, tick: float) -> None:
        self.tick, self.now = tick, 0.0

    def perf_counter(self) -> float:
        return self.now


def clocked(task: Any, clock: StepClock) -> Any:
    """``task`` whose loss (called once per training step) advances ``clock`` by one tick."""
    base = type(task)

    class Clocked(base):
        def loss(self, model: torch.nn.Module, batch: dict) -> dict:
            clock.now += clock.tick
            return base.loss(self, model, batch)

    return Clocked()


def without_report(task: Any) -> Any:
    """``task`` without its end-of-training report (figures, samples): rank 0 alone writes it,
    and each task's own tests check it; left out here, it would only lengthen the suite."""
    base = type(task)

    class Unreported(base):
        def report(self, *args: Any) -> dict:
            return {}

    return Unreported()


def main() -> None:
    config = TrainConfig.from_json(Path(sys.argv[1]).read_text())
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    task = without_report(get_task(os.environ.get("ANTLERS_TEST_TASK", "classify")))
    if len(sys.argv) > 2:
        clock = StepClock(float(sys.argv[2].split(",")[rank]))
        antlers.engine.trainer.time = clock  # the module's `time`: only perf_counter is read
        task = clocked(task, clock)
    result = fit(task, config, log=print)
    out = Path(config.out)
    torch.save(
        {k: v.detach().clone() for k, v in result.model.state_dict().items()},
        out / f"rank{rank}.pt",
    )
    summary = {
        "run_dir": str(result.run_dir),
        "stopped_by": result.stopped_by,
        "steps": result.history[-1]["step"],
        "seconds": result.history[-1]["seconds"],
        "epochs": len(result.history),
        "is_main": result.is_main,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(summary))
    print(f"rank {rank} done")


main()
