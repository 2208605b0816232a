"""What the engine's monitor records for explain, on the session's tiny classifier: the first
conv's kernels at the start and after every epoch, and per-layer gradient norms (equal to
autograd's, continued across a resume)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from antlers.config import TrainConfig
from antlers.engine.checkpoint import load_weights
from antlers.engine.fit import fit
from antlers.engine.monitor import load_kernels
from antlers.run import Run
from antlers.tasks import get_task

if TYPE_CHECKING:
    from conftest import TrainedRun


def quiet(*_: object) -> None:
    pass


@pytest.fixture
def run_dir(classify_run: TrainedRun) -> Path:
    """The session's classifier: lecture_cnn on digits at 16x16, 2 epochs of 11 steps; the
    resume test trains its own copy."""
    return classify_run.path


def _config(run_dir: Path) -> TrainConfig:
    config = Run.load(run_dir).config
    assert config is not None
    return config


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_kernels_are_saved_at_the_start_and_every_epoch(run_dir: Path) -> None:
    snapshots = load_kernels(run_dir)
    assert list(snapshots) == [0, 1, 2]
    config = _config(run_dir)
    task = get_task("classify").configure(config)
    torch.manual_seed(config.seed)  # what fit does before building the model
    initial = task.build_model(task.load_data(config).model_config)
    assert torch.equal(snapshots[0], initial[1].conv1.weight.detach())
    weights, _ = load_weights(run_dir / "weights" / "last.safetensors")
    assert torch.equal(snapshots[2], weights["1.conv1.weight"])
    assert not torch.equal(snapshots[0], snapshots[2])  # they learned


def test_gradient_norms_equal_autograd_at_the_first_step(run_dir: Path) -> None:
    rows = _rows(run_dir / "grad_norms.csv")
    assert list(rows[0]) == ["step", "epoch", "1.conv1", "1.conv2", "1.fc"]
    assert [int(r["step"]) for r in rows] == list(range(len(rows)))  # 11 steps/epoch: each one
    assert {r["epoch"] for r in rows} == {"1", "2"}
    config = _config(run_dir)
    task = get_task("classify").configure(config)
    data = task.load_data(config)
    torch.manual_seed(config.seed)
    model = task.build_model(data.model_config)
    batch = next(data.train.epoch(0))
    task.loss(model, batch)["loss"].backward()
    for layer in ("conv1", "conv2", "fc"):
        norm = getattr(model[1], layer).weight.grad.norm().item()
        assert float(rows[0][f"1.{layer}"]) == pytest.approx(norm, rel=1e-4)
    assert (run_dir / "grad_norms.png").is_file()


def test_resumed_run_continues_the_gradient_log(run_dir: Path, tmp_path: Path) -> None:
    config = _config(run_dir).replace(out=str(tmp_path), name="cut")
    task = get_task("classify")
    first = fit(task, config.replace(max_steps=15), log=quiet)
    fit(task, config, resume=first.run_dir, log=quiet)
    assert _rows(first.run_dir / "grad_norms.csv") == _rows(run_dir / "grad_norms.csv")
    assert list(load_kernels(first.run_dir)) == [0, 1, 2]
