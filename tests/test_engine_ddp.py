"""Distributed training (torchrun, gloo on CPU) against one process: each epoch's shards partition
the data set, two processes with half batches train as one process with whole batches, and the
ranks agree on when a time budget ends although their clocks differ."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from antlers.config import TrainConfig
from antlers.engine.fit import fit
from antlers.engine.loader import TensorLoader, epoch_order
from antlers.tasks import default_config, get_task
from conftest import finish_or_kill

WORKER = Path(__file__).parent / "scripts" / "ddp_worker.py"


def quiet(*_: object) -> None:
    pass


def _torchrun(config: TrainConfig, *args: str, timeout: float = 300, task: str = "classify") -> str:
    """Train ``config`` with two processes (tests/scripts/ddp_worker.py); returns their output.
    The whole process group is killed on a timeout (a rank left waiting for the other)."""
    Path(config.out).mkdir(parents=True, exist_ok=True)
    config_file = Path(config.out) / "config.json"
    config_file.write_text(config.to_json())
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    proc = subprocess.Popen(
        [*command, str(WORKER), str(config_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "ANTLERS_TEST_TASK": task},
        start_new_session=True,
    )
    output = finish_or_kill(proc, timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def _rank_weights(out: Path) -> list[dict[str, torch.Tensor]]:
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def _rank_summaries(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(("n", "world_size"), [(12, 2), (13, 2), (12, 3), (14, 3)])
def test_the_shards_of_an_epoch_partition_the_data_set(
    n: int, world_size: int, drop_last: bool
) -> None:
    """Every sample in exactly one shard; when ``n`` does not divide evenly, the shards are
    padded with the fewest repeats (or, with ``drop_last``, cut by the fewest samples)."""
    for epoch in (0, 1):
        shards = [
            epoch_order(
                n, epoch, shuffle=True, seed=7, rank=r, world_size=world_size, drop_last=drop_last
            ).tolist()
            for r in range(world_size)
        ]
        size = n // world_size if drop_last else -(-n // world_size)
        assert [len(shard) for shard in shards] == [size] * world_size
        seen = [i for shard in shards for i in shard]
        if drop_last:
            assert len(set(seen)) == len(seen)  # disjoint
            assert set(seen) <= set(range(n))
        else:
            assert set(seen) == set(range(n))  # their union is the data set
            assert len(seen) - len(set(seen)) == size * world_size - n  # only the padding repeats
    first, second = (epoch_order(n, e, shuffle=True, seed=7).tolist() for e in (0, 1))
    assert sorted(first) == sorted(second) == list(range(n))
    assert first != second  # a new order every epoch


def test_two_ranks_with_half_batches_see_the_one_process_batches() -> None:
    """Batch b of rank 0 and batch b of rank 1 (B/2 samples each) together are batch b of one
    process with B samples: disjoint, and over an epoch the whole data set."""
    n, batch = 40, 8
    images, labels = torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.arange(n)

    def batches(rank: int, world_size: int, size: int, epoch: int) -> list[list[int]]:
        loader = TensorLoader(
            images, labels, size, shuffle=True, seed=3, rank=rank, world_size=world_size
        )
        return [b["label"].tolist() for b in loader.epoch(epoch)]

    for epoch in (0, 1):
        whole = batches(0, 1, batch, epoch)
        halves = [batches(rank, 2, batch // 2, epoch) for rank in (0, 1)]
        assert len(whole) == len(halves[0]) == len(halves[1]) == n // batch
        for one, first, second in zip(whole, *halves, strict=True):
            assert not set(first) & set(second)
            assert sorted(first + second) == sorted(one)
        shards = [[i for b in half for i in b] for half in halves]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(n))


def test_two_processes_with_half_batches_train_as_one_process(tmp_path: Path) -> None:
    """DDP averages the ranks' gradients; with a mean-reduced loss and equal shards, 2 x B/2
    gives the gradient of 1 x B. No batch norm (its statistics are per process), no
    augmentation, no EMA, no dropout; only whole batches (drop_last: the data set holds many
    batches). After two epochs the weights match one process to float tolerance, the ranks'
    weights are identical, and rank 0 alone wrote a run folder."""
    config = TrainConfig(
        data="digits",
        model="lecture_cnn",
        image_size=16,
        epochs=2,
        batch_size=32,  # per process
        lr=0.05,
        ema=0.0,
        augment=False,
        device="cpu",
        out=str(tmp_path / "two"),
        name="ddp",
    )
    _torchrun(config)
    one = fit(
        get_task("classify"),
        config.replace(batch_size=64, out=str(tmp_path / "one")),
        log=quiet,
    )
    a, b = _rank_weights(tmp_path / "two")
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key}: the ranks differ"
    single = one.model.state_dict()
    assert a.keys() == single.keys()
    for key in a:
        close = torch.allclose(a[key], single[key], rtol=1e-5, atol=1e-6)
        assert close, (
            f"{key}: two processes differ from one by {(a[key] - single[key]).abs().max()}"
        )
    ranks = _rank_summaries(tmp_path / "two")
    assert [r["steps"] for r in ranks] == [one.history[-1]["step"]] * 2
    assert [p.name for p in (tmp_path / "two" / "classify").iterdir()] == ["ddp"]
    metrics = tmp_path / "two" / "classify" / "ddp" / "metrics.csv"
    assert metrics.read_text().count("\n") == 3  # header + 2 epochs


def test_ddp_time_budget_agrees_across_ranks(tmp_path: Path) -> None:
    """The ranks' clocks run at different speeds: 1/16 s a step on rank 0, 1/8 s on rank 1
    (the worker's step clock, no sleeping). Their mean, 3/32 s a step, reaches the 3 s budget
    at step 32 (rank 1 alone would stop at 24, rank 0 at 48): both ranks must stop there (else
    one waits forever for the other), plan the same learning rates (else the weights part) and
    write into one unnamed run folder chosen by rank 0."""
    out = tmp_path / "out"
    config = TrainConfig(
        data="digits", time=3.0, batch_size=32, out=str(out), device="cpu", lr=0.05, augment=False
    )
    _torchrun(config, "0.0625,0.125")
    a, b = _rank_weights(out)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ranks = _rank_summaries(out)
    assert [r["stopped_by"] for r in ranks] == ["time", "time"]
    assert [r["steps"] for r in ranks] == [32, 32]
    assert [r["seconds"] for r in ranks] == [3.0, 3.0]
    assert ranks[0]["epochs"] >= 2  # the mean clock was carried over an epoch's end
    assert ranks[0]["run_dir"] == ranks[1]["run_dir"] == str(out / "classify" / "exp")
    assert [r["is_main"] for r in ranks] == [True, False]
    assert [p.name for p in (out / "classify").iterdir()] == ["exp"]


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("segment", {"data": "scenes", "model": "unet-w4-d2", "image_size": 16, "batch_size": 50}),
        ("detect", {"data": "scenes", "image_size": 64, "batch_size": 4}),
        ("generate", {"data": "digits", "model": "unet_tiny"}),
        ("generate", {"data": "captions", "model": "unet_tiny", "image_size": 24}),
    ],
    ids=["segment", "detect", "generate", "captions"],
)
def test_every_task_trains_under_torchrun(task: str, options: dict, tmp_path: Path) -> None:
    """Two processes train each task for a time budget: the ranks stop at the same step with the
    same weights, and rank 0 alone wrote one run folder, scored on the test split once."""
    out = tmp_path / "out"
    config = default_config(task, time=2.0, out=str(out), device="cpu", **options)
    _torchrun(config, task=task)
    a, b = _rank_weights(out)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ranks = _rank_summaries(out)
    assert [r["stopped_by"] for r in ranks] == ["time", "time"]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0
    assert [p.name for p in (out / task).iterdir()] == ["exp"]
    summary = json.loads((out / task / "exp" / "metrics.json").read_text())
    assert any(key.startswith("test_") for key in summary)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_as_one_node_with_two_processes(tmp_path: Path) -> None:
    """Two torchrun agents on this machine, as two nodes of one process each (c10d rendezvous
    on 127.0.0.1), reach the weights of one agent with two processes."""
    options = {"data": "digits", "model": "lecture_cnn", "image_size": 16, "epochs": 1}
    one = TrainConfig(out=str(tmp_path / "one"), device="cpu", augment=False, **options)
    _torchrun(one)
    two = one.replace(out=str(tmp_path / "two"))
    Path(two.out).mkdir(parents=True)
    config_file = Path(two.out) / "config.json"
    config_file.write_text(two.to_json())
    endpoint = f"127.0.0.1:{_free_port()}"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=antlers-test",
        str(WORKER), str(config_file),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agents = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(outputs)[-3000:]
    for a, b in zip(_rank_weights(tmp_path / "one"), _rank_weights(tmp_path / "two"), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key
