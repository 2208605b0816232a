"""Two processes under torchrun (gloo on CPU): same parameters on both ranks, one run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).parent / "scripts" / "ddp_worker.py"


def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    result = _torchrun(str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    runs = list((tmp_path / "classify").iterdir())
    assert [r.name for r in runs] == ["ddp"]  # rank 0 alone wrote a run folder
    assert (runs[0] / "metrics.csv").read_text().count("\n") == 2


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    return subprocess.run(
        [*command, str(WORKER), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_ddp_time_budget_agrees_across_ranks(tmp_path: Path) -> None:
    """Rank 0 evaluates 1 s slower, so its clock lags rank 1's: the ranks must still stop after
    the same step (else one waits forever for the other), plan the same learning rates (else
    the weights part) and write into one unnamed run folder chosen by rank 0."""
    result = _torchrun(str(tmp_path), "time")
    assert result.returncode == 0, result.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["stopped_by"] for r in ranks] == ["time", "time"]
    assert ranks[0]["steps"] == ranks[1]["steps"]
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"] == str(tmp_path / "classify" / "exp")
    assert [r["is_main"] for r in ranks] == [True, False]
    assert [p.name for p in (tmp_path / "classify").iterdir()] == ["exp"]
