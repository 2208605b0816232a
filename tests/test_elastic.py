"""torchrun restarts lose at most ``--save-every`` steps: a worker SIGKILLed mid-epoch under
``torchrun --max-restarts 1`` is restarted with the others, the run resumes from its last saved
state by itself (no ``--resume``) in the same run folder, and ends with the weights of a run
that was never interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from antlers.config import TrainConfig
from antlers.engine.checkpoint import load_state, load_weights
from conftest import finish_or_kill

WORKER = Path(__file__).parent / "scripts" / "elastic_worker.py"
FAILING = Path(__file__).parent / "scripts" / "failing_worker.py"


def _torchrun(config: TrainConfig, *args: str, timeout: float = 300) -> str:
    """Train ``config`` with two processes and one allowed restart; returns the output."""
    Path(config.out).mkdir(parents=True, exist_ok=True)
    config_file = Path(config.out) / "config.json"
    config_file.write_text(config.to_json())
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
        "--max-restarts=1", "--monitor-interval=0.2", str(WORKER), str(config_file), *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},
        start_new_session=True,
    )  # fmt: skip
    output = finish_or_kill(proc, timeout)
    Path(config.out, "torchrun.log").write_text(output)
    assert proc.returncode == 0, output[-3000:]
    return output


def test_a_killed_worker_restarts_and_resumes_to_the_uninterrupted_weights(tmp_path: Path):
    config = TrainConfig(
        data="digits", model="lecture_cnn", image_size=16, epochs=2, batch_size=32, lr=0.05,
        ema=0.0, augment=False, device="cpu", save_every=5, out=str(tmp_path / "whole"),
        name="run",
    )  # fmt: skip
    _torchrun(config)
    killed = config.replace(out=str(tmp_path / "killed"))
    output = _torchrun(killed, "13")  # rank 1 dies in step 13 of epoch 1
    assert "rank 0: resuming" in output, output[-3000:]
    assert "from step 10 (epoch 1)" in output  # the last save before the kill
    runs = [p.name for p in (tmp_path / "killed" / "classify").iterdir() if p.is_dir()]
    assert runs == ["run"]  # the restart resumed the same folder
    weights = Path("classify", "run", "weights", "last.safetensors")
    whole, _ = load_weights(tmp_path / "whole" / weights)
    resumed, _ = load_weights(tmp_path / "killed" / weights)
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_a_rank_that_fails_stops_every_rank_with_one_line_naming_it(tmp_path: Path):
    """Rank 1 raises an error in epoch 2: every process ends (torchrun reports the failure)
    instead of waiting for rank 1 in the next all-reduce, rank 1's error is one line naming the
    rank and the cause, and the checkpoint of epoch 1 is intact."""
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
        "--monitor-interval=0.2", str(FAILING), "train", "classify", "--data", "digits",
        "--model", "lecture_cnn", "--image-size", "16", "--epochs", "3", "--batch-size", "32",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ANTLERS_TEST_FAIL_AT": "30"}
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "antlers: error: rank 1 of 2: " in line]
    cause = "shard 1 holds a broken batch (the test's injected fault)"
    assert lines == [f"antlers: error: rank 1 of 2: {cause}"]
    state = load_state(out / "classify" / "exp" / "state" / "last.pt")
    assert state["loop"]["epoch"] == 1


def test_a_rank_that_never_arrives_ends_the_others_after_the_timeout(tmp_path: Path):
    """Rank 1 hangs before joining (ANTLERS_TEST_HANG): rank 0 gives up after
    ANTLERS_DIST_TIMEOUT seconds with one error line naming itself, and torchrun stops rank 1,
    instead of torch's default 30 minutes of waiting."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
        "--monitor-interval=0.2", str(FAILING), "train", "classify", "--data", "digits",
        "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ANTLERS_TEST_HANG": "1"}
    env["ANTLERS_DIST_TIMEOUT"] = "5"
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("antlers: error: ")]
    assert len(lines) == 1
    assert lines[0].startswith("antlers: error: rank 0 of 2: "), proc.stderr[-2000:]
    assert "ANTLERS_DIST_TIMEOUT" not in lines[0]  # the timeout was valid: the wait failed


def test_dist_timeout_must_be_positive_seconds(monkeypatch: pytest.MonkeyPatch):
    from antlers.engine.dist import timeout

    monkeypatch.setenv("ANTLERS_DIST_TIMEOUT", "2.5")
    assert timeout().total_seconds() == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv("ANTLERS_DIST_TIMEOUT", bad)
        with pytest.raises(ValueError, match="ANTLERS_DIST_TIMEOUT"):
            timeout()
