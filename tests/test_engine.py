"""The engine: exact resume (mid-epoch too), extension, signals, checkpoints, safety."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from antlers.config import TrainConfig
from antlers.engine.checkpoint import CheckpointError, load_state, load_weights
from antlers.engine.fit import NonFiniteLossError, fit
from antlers.run import Run
from antlers.tasks import get_task

if TYPE_CHECKING:
    from conftest import TrainedRun

QUICK = {"data": "digits", "batch_size": 128, "lr": 0.05, "device": "cpu"}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_state(run_dir / "state" / "last.pt")["model"]


def quiet(*_: object) -> None:
    pass


def test_resume_mid_epoch_equals_uninterrupted(tmp_path: Path) -> None:
    task = get_task("classify")
    whole = fit(task, TrainConfig(**QUICK, epochs=2, out=str(tmp_path), name="whole"), log=quiet)
    cut = TrainConfig(**QUICK, epochs=2, out=str(tmp_path), name="cut", max_steps=17)
    first = fit(task, cut, log=quiet)
    assert first.stopped_by == "max_steps"
    state = load_state(first.run_dir / "state" / "last.pt")
    assert state["loop"]["epoch"] == 1  # stopped in epoch 2 ...
    assert state["loop"]["batch"] > 0  # ... in its middle
    second = fit(task, cut.replace(max_steps=None), resume=first.run_dir, log=quiet)
    assert second.stopped_by == "epochs"
    a, b = _weights(whole.run_dir), _weights(second.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["val_accuracy"] for r in whole.history] == [r["val_accuracy"] for r in second.history]


def test_extend_a_finished_run(tmp_path: Path) -> None:
    run = fit(
        get_task("classify"), TrainConfig(**QUICK, epochs=1, out=str(tmp_path), name="x"), log=quiet
    )
    config = TrainConfig(**QUICK, epochs=2, out=str(tmp_path), name="x")
    extended = fit(get_task("classify"), config, resume=run.run_dir, log=quiet)
    assert [row["epoch"] for row in extended.history] == [1, 2]
    assert (run.run_dir / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_run_folder_contents_and_reload(classify_run: TrainedRun) -> None:
    run_dir = classify_run.path  # lecture_cnn on digits at 16x16, 2 epochs
    for name in (
        "config.json",
        "metrics.csv",
        "curves.png",
        "confusion.png",
        "report.html",
        "weights/best.safetensors",
        "weights/last.safetensors",
        "state/last.pt",
    ):
        assert (run_dir / name).is_file(), name
    _, meta = load_weights(run_dir / "weights" / "last.safetensors")
    assert meta["classes"] == [str(d) for d in range(10)]
    run = Run.load(run_dir / "weights" / "last.safetensors")  # the file alone rebuilds it
    images = torch.rand(3, 1, 16, 16)
    result = run.predict(images)
    assert result.indices.shape == (3,)
    assert result.probabilities.shape == (3, 10)
    torch.testing.assert_close(result.probabilities.sum(1), torch.ones(3))
    assert result.labels == [run.classes[int(i)] for i in result.indices]
    assert [row["label"] for row in result.to_json()] == result.labels


def test_unnamed_runs_are_numbered_exp_exp2(tmp_path: Path) -> None:
    config = TrainConfig(**QUICK, epochs=1, max_steps=1, out=str(tmp_path))
    first = fit(get_task("classify"), config, log=quiet)
    assert first.run_dir == tmp_path / "classify" / "exp"
    second = fit(get_task("classify"), config, log=quiet)
    assert second.run_dir.name == "exp2"


def test_non_finite_loss_names_the_step_and_checkpoint(tmp_path: Path) -> None:
    config = TrainConfig(
        **{**QUICK, "lr": 1e30}, epochs=1, out=str(tmp_path), name="nan", label_smoothing=0.0
    )
    with pytest.raises(NonFiniteLossError, match=r"at step \d+ .*no checkpoint yet"):
        fit(get_task("classify"), config, log=quiet)  # in epoch 1: none is saved (see test_faults)


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "last.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_state(path)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(CheckpointError, match="pickles are refused"):
        load_weights(path)


def test_sigterm_saves_and_exits_cleanly(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "antlers",
        "train",
        "classify",
        "--data",
        "digits",
        "--epochs",
        "50",
        "--batch-size",
        "32",
        "--out",
        str(tmp_path),
        "--name",
        "sig",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},  # lines as printed
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the first epoch is done (and saved), then interrupt
        if line.startswith("epoch 1:"):
            break
    proc.send_signal(signal.SIGTERM)  # the handler is in place for the whole of training
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in rest
    said = re.search(r"stopped by signal at step (\d+)", rest)
    assert said, rest[-2000:]
    state = load_state(tmp_path / "classify" / "sig" / "state" / "last.pt")
    assert state["loop"]["step"] == int(said.group(1))  # the state of the step it stopped after
    assert state["loop"]["epoch"] == 1  # in epoch 2 of 50: it finished that step and stopped
    assert state["loop"]["batch"] >= 1


class _StepClock:
    """Stands in for the ``time`` module the trainer reads: ``perf_counter`` is the time of the
    training steps taken so far, ``tick`` seconds each, whatever the machine's speed."""

    def __init__(self, tick: float) -> None:
        self.tick, self.now = tick, 1000.0

    def perf_counter(self) -> float:
        return self.now


class _ClockedTask:
    """The classify task whose loss (called once per training step) advances ``clock``."""

    def __init__(self, clock: _StepClock) -> None:
        self.task, self.clock = get_task("classify"), clock

    def __getattr__(self, name: str) -> object:
        return getattr(self.task, name)

    def configure(self, config: TrainConfig) -> _ClockedTask:
        self.task = self.task.configure(config)
        return self

    def loss(self, model: torch.nn.Module, batch: dict) -> dict:
        self.clock.now += self.clock.tick
        return self.task.loss(model, batch)


def test_time_budget_stops_training_and_plans_the_schedule_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a clock that advances 1/8 s per step, a 2 s budget ends training after step 16 (the
    first step that reaches it), over more than one epoch, and the one-cycle schedule is
    planned over the 2 s: step k runs at the learning rate of progress k / 16."""
    from antlers.engine import trainer
    from antlers.engine.schedule import learning_rate

    clock = _StepClock(0.125)
    monkeypatch.setattr(trainer, "time", clock)
    config = TrainConfig(**QUICK, model="lecture_cnn", image_size=16, time=2.0, out=str(tmp_path))
    result = fit(_ClockedTask(clock), config, log=quiet)
    assert result.stopped_by == "time"
    assert clock.now == 1002.0  # 16 steps, no more
    assert len(result.history) >= 2  # several epochs fit in the budget: the clock ended it
    last = result.history[-1]
    assert last["step"] == 16
    for row in result.history:
        assert row["seconds"] == row["step"] * 0.125
        planned = learning_rate("onecycle", (row["step"] - 1) / 16, QUICK["lr"], config.warmup)
        assert row["lr"] == pytest.approx(planned)  # the lr of the epoch's last step
    # the one-cycle schedule ran its course over the 2 s: the learning rate is near 0 at the end
    assert last["lr"] < 0.1 * QUICK["lr"]


def test_early_stop_when_the_metric_stops_improving(tmp_path: Path) -> None:
    # lr 0 and no BatchNorm: the second epoch cannot beat the first.
    config = TrainConfig(
        **{**QUICK, "lr": 0.0},
        model="lecture_cnn",
        image_size=16,
        epochs=5,
        patience=1,
        out=str(tmp_path),
    )
    result = fit(get_task("classify"), config, log=quiet)
    assert result.stopped_by == "early_stop"
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_initial_weights_from_a_torchvision_safetensors_file(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import save_file

    from antlers.engine.checkpoint import load_matching
    from antlers.tasks.classify.models import build_classifier
    from conftest import classify_config

    source = torchvision.models.resnet18(weights=None)  # 1000 classes, as published weights
    file = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(file))
    model = build_classifier(classify_config("resnet18", 3, 32, classes=10))
    count, skipped = load_matching(model, file)
    assert sorted(skipped) == ["fc.bias", "fc.weight"]  # the 10-class head stays new
    assert count == len(source.state_dict()) - 2
    assert torch.equal(model[1].conv1.weight, source.conv1.weight)
    pickle_file = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), pickle_file)
    with pytest.raises(CheckpointError, match=r"pickled \.pth files are refused"):
        load_matching(model, pickle_file)


def test_ema_follows_its_formula_with_warm_up() -> None:
    """The fused EMA update against the formula in float64: the first update copies, then
    averaged = d * averaged + (1 - d) * current with d = min(decay, (1 + n) / (10 + n))."""
    from torch import nn

    from antlers.engine.training import make_ema

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    ema = make_ema(model, 0.9)
    expected: dict[str, torch.Tensor] = {}
    for n in range(6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(2, 1, 5, 5))  # moves the BatchNorm statistics too
        ema.update_parameters(model)
        d = min(0.9, (1 + n) / (10 + n)) if n else 0.0
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                expected[k] = expected.get(k, 0) * d + v.double() * (1 - d)
    averaged = ema.module.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(averaged[k].double(), v, rtol=1e-6, atol=1e-6)
    assert not torch.equal(averaged["0.weight"], model.state_dict()["0.weight"])
    assert averaged["1.num_batches_tracked"] == 6  # counters are copied


def test_random_crop_is_each_image_cut_at_its_own_offset() -> None:
    from antlers.engine.loader import random_crop

    images = torch.randint(0, 256, (40, 3, 9, 7), dtype=torch.uint8)
    out = random_crop(images, 2, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)  # the same draws, one image at a time
    dy = torch.randint(0, 5, (40,), generator=generator)
    dx = torch.randint(0, 5, (40,), generator=generator)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(40):
        expected = padded[i, :, dy[i] : dy[i] + 9, dx[i] : dx[i] + 7]
        assert torch.equal(out[i], expected)
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 10  # many offsets tried
