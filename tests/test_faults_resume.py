"""Resume equals uninterrupted after SIGTERM, for every task and for an extended run; a
non-finite loss or weights name a checkpoint that exists and holds finite weights, or say that
none exists yet."""

from __future__ import annotations

import contextlib
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from antlers.config import TrainConfig, load_run_config
from antlers.engine.checkpoint import load_state, load_weights
from antlers.engine.fit import NonFiniteLossError, fit
from faults import TINY, ReportlessTask, cheap_figures, digest, quiet


class FaultyTask(ReportlessTask):
    """A task whose training loss, at call ``at`` (0-based, counted from this object's
    creation), first lets ``fault(model, loss)`` act: send a signal, poison the loss."""

    def __init__(self, name: str, at: int, fault: Any) -> None:
        super().__init__(name)
        self.at, self.fault, self.calls = at, fault, 0

    def configure(self, config: TrainConfig) -> FaultyTask:
        super().configure(config)
        return self

    def loss(self, model: torch.nn.Module, batch: dict) -> dict:
        out = self.task.loss(model, batch)
        if self.calls == self.at:
            out = {**out, "loss": self.fault(model, out["loss"])}
        self.calls += 1
        return out


def sigterm(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    signal.raise_signal(signal.SIGTERM)  # StopFlag's handler: finish this step, save, stop
    return loss


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def model_digests(run_dir: Path) -> tuple[str, str | None, str]:
    """The trained and EMA weights of the state, and the best weights file."""
    state = load_state(run_dir / "state" / "last.pt")
    ema = digest(state["ema"]) if state["ema"] is not None else None
    best, _ = load_weights(run_dir / "weights" / "best.safetensors")
    return digest(state["model"]), ema, digest(best)


@pytest.mark.parametrize("finished", ["classify_run", "segment_run", "detect_run", "generate_run"])
def test_sigterm_then_resume_equals_the_uninterrupted_run(
    finished: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """conftest's finished run of each task is the uninterrupted one; the same config is
    trained again, SIGTERMed half-way, and resumed (on the fixture's number of threads)."""
    whole = request.getfixturevalue(finished).path  # first: the fixture keeps its figures
    cheap_figures(monkeypatch.setattr)
    config = load_run_config(whole).replace(out=str(tmp_path), name="cut")
    steps = load_state(whole / "state" / "last.pt")["loop"]["step"]
    at = steps // 2
    with threads(1 if config.task == "detect" else torch.get_num_threads()):  # as conftest
        cut = fit(FaultyTask(config.task, at, sigterm), config, log=quiet)
        assert cut.stopped_by == "signal"
        assert load_state(cut.run_dir / "state" / "last.pt")["loop"]["step"] == at + 1
        resumed = fit(ReportlessTask(config.task), config, resume=cut.run_dir, log=quiet)
    assert resumed.stopped_by == "epochs"
    assert model_digests(cut.run_dir) == model_digests(whole)


def test_an_extension_stopped_by_sigterm_and_resumed_equals_the_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished 1-epoch run extended to 3 epochs, once straight through and once SIGTERMed in
    its second epoch and resumed from the folder alone (its config.json says 3 epochs)."""
    cheap_figures(monkeypatch.setattr)
    short = TrainConfig(**{**TINY, "epochs": 1}, out=str(tmp_path), name="straight")
    straight = fit(ReportlessTask(), short, log=quiet).run_dir
    cut = tmp_path / "classify" / "cut"
    shutil.copytree(straight, cut)
    longer = short.replace(epochs=3)
    fit(ReportlessTask(), longer, resume=straight, log=quiet)
    stopped = fit(FaultyTask("classify", 2, sigterm), longer.replace(name="cut"), resume=cut)
    assert stopped.stopped_by == "signal"
    assert load_state(cut / "state" / "last.pt")["loop"]["epoch"] == 1  # in the extension
    fit(ReportlessTask(), load_run_config(cut), resume=cut, log=quiet)
    assert load_state(cut / "state" / "last.pt")["loop"]["epoch"] == 3
    assert model_digests(cut) == model_digests(straight)


def nan_loss(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    return loss * float("nan")


def nan_gradient(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    """The same (finite) loss, but a gradient of NaN for every weight: sqrt' is infinite at 0."""
    weights = torch.cat([p.flatten() for p in model.parameters()])
    return loss + 0.0 * torch.sqrt(weights.sum() * 0.0)


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint_yet(tmp_path: Path) -> None:
    config = TrainConfig(**TINY, out=str(tmp_path), name="nan")
    with pytest.raises(NonFiniteLossError, match=r"at step 2 .*no checkpoint yet") as raised:
        fit(FaultyTask("classify", 2, nan_loss), config, log=quiet)
    assert not (tmp_path / "classify" / "nan" / "state").exists()
    assert "last.pt" not in str(raised.value)


@pytest.mark.parametrize("fault", [nan_loss, nan_gradient])
def test_nan_later_names_a_checkpoint_with_finite_weights(tmp_path: Path, fault: Any) -> None:
    """A NaN loss in epoch 2, or finite losses whose last step of epoch 2 makes the weights
    NaN (which are then not saved): the message names epoch 1's state, which loads, finite."""
    config = TrainConfig(**TINY, out=str(tmp_path), name="nan")
    state = tmp_path / "classify" / "nan" / "state" / "last.pt"
    at = 9 if fault is nan_gradient else 7  # 5 steps an epoch: the last of epoch 2, or its 3rd
    with pytest.raises(NonFiniteLossError, match=f"last good checkpoint: {state}$|{state} "):
        fit(FaultyTask("classify", at, fault), config, log=quiet)
    saved = load_state(state)
    assert saved["loop"]["epoch"] == 1
    assert all(t.isfinite().all() for t in saved["model"].values())
    tensors, meta = load_weights(state.parents[1] / "weights" / "last.safetensors")
    assert meta["epoch"] == 1
    assert all(t.isfinite().all() for t in tensors.values())
