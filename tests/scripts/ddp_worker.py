"""Run under torchrun by tests/test_engine_ddp.py: train, then dump this rank's parameters."""

import os
import sys

import torch

from antlers.config import TrainConfig
from antlers.engine.fit import fit
from antlers.tasks import get_task

out = sys.argv[1]
torch.set_num_threads(1)
config = TrainConfig(
    data="digits", epochs=1, batch_size=32, out=out, name="ddp", device="cpu", lr=0.05
)
result = fit(get_task("classify"), config, log=print)
rank = int(os.environ["RANK"])
torch.save(
    {k: v.detach().clone() for k, v in result.model.state_dict().items()},
    os.path.join(out, f"rank{rank}.pt"),
)
print(f"rank {rank} done")
