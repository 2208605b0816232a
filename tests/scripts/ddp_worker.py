"""Run under torchrun by tests/test_engine_ddp.py: train, then dump this rank's parameters.

``ddp_worker.py OUT`` trains one epoch into the run folder OUT/classify/ddp. ``ddp_worker.py OUT
time`` trains for a 3-second budget into an unnamed run folder, rank 0 evaluating 1 s slower
than rank 1 (as when it writes large checkpoints): the ranks' clocks then disagree, and they
must still plan the same learning rates, stop after the same step and share one folder.
"""

import json
import os
import sys
import time

import torch

from antlers.config import TrainConfig
from antlers.engine.fit import fit
from antlers.tasks import get_task

out = sys.argv[1]
timed = len(sys.argv) > 2 and sys.argv[2] == "time"
rank = int(os.environ["RANK"])
torch.set_num_threads(1)
task = get_task("classify")
if timed:
    config = TrainConfig(
        data="digits", time=3.0, batch_size=32, out=out, device="cpu", lr=0.05, augment=False
    )
    if rank == 0:
        evaluate = type(task).evaluate

        class SlowToEvaluate(type(task)):
            def evaluate(self, *args, **kwargs):
                time.sleep(1.0)
                return evaluate(self, *args, **kwargs)

        task = SlowToEvaluate()
else:
    config = TrainConfig(
        data="digits", epochs=1, batch_size=32, out=out, name="ddp", device="cpu", lr=0.05
    )
result = fit(task, config, log=print)
torch.save(
    {k: v.detach().clone() for k, v in result.model.state_dict().items()},
    os.path.join(out, f"rank{rank}.pt"),
)
summary = {
    "run_dir": str(result.run_dir),
    "stopped_by": result.stopped_by,
    "steps": result.history[-1]["step"],
    "is_main": result.is_main,
}
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump(summary, f)
print(f"rank {rank} done")
