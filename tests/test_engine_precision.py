"""The CPU's training precision (engine/precision.py): forced by ``cpu_amp``, else chosen by
timing float32 against bf16 steps and remembered; the choice is logged, saved in config.json,
and the timing leaves the run itself untouched."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from antlers.config import TrainConfig, load_run_config
from antlers.engine.checkpoint import load_state
from antlers.engine.fit import fit
from antlers.tasks import get_task

QUICK = {"data": "digits", "batch_size": 128, "lr": 0.05, "device": "cpu"}
PRECISION = importlib.import_module("antlers.engine.precision")


class _DtypeSpy:
    """The classify task, recording the dtype of the model's output in each training step."""

    def __init__(self) -> None:
        self.task, self.dtypes = get_task("classify"), set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.task, name)

    def configure(self, config: TrainConfig) -> _DtypeSpy:
        self.task = self.task.configure(config)
        return self

    def loss(self, model: torch.nn.Module, batch: dict) -> dict:
        self.dtypes.add(model(batch["image"]).dtype)
        return self.task.loss(model, batch)


def _said(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("precision: ")]


@pytest.mark.parametrize(
    ("cpu_amp", "native", "expected", "said"),
    [
        (True, True, torch.bfloat16, "precision: bf16 autocast (--cpu-amp)"),
        (True, False, torch.float32, "no native bf16"),  # then float32, and the log says so
        (False, True, torch.float32, "precision: float32 (--no-cpu-amp)"),
        (None, False, torch.float32, "precision: float32 (this CPU has no native bf16"),
    ],
)
def test_a_forced_or_impossible_precision_is_not_timed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cpu_amp: bool | None,
    native: bool,
    expected: torch.dtype,
    said: str,
) -> None:
    monkeypatch.setattr(PRECISION, "cpu_has_bf16", lambda: native)
    monkeypatch.setattr(PRECISION, "_time_steps", _not_called)
    spy, lines = _DtypeSpy(), []
    config = TrainConfig(**QUICK, epochs=1, max_steps=2, cpu_amp=cpu_amp, out=str(tmp_path))
    result = fit(spy, config, log=lines.append)
    assert spy.dtypes == {expected}
    assert len(_said(lines)) == 1
    assert said in _said(lines)[0]
    assert load_run_config(result.run_dir).cpu_amp is (cpu_amp if cpu_amp is not None else False)


def _not_called(*_: object) -> None:
    raise AssertionError("timed, where the precision was already settled")


@pytest.mark.parametrize(("bf16_ms", "expected"), [(30.0, torch.bfloat16), (37.0, torch.float32)])
def test_unset_the_faster_precision_trains_and_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16_ms: float, expected: torch.dtype
) -> None:
    """Timed steps of 40 ms in float32: bf16 at 30 ms wins; at 37 ms it is within the margin
    (10%), so float32 trains. The second run reads the timing instead of timing again."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(PRECISION, "cpu_has_bf16", lambda: True)
    timing = PRECISION.Timing(0.040, bf16_ms / 1e3, "2026-12-06")
    monkeypatch.setattr(PRECISION, "_time_steps", lambda *_: timing)
    config = TrainConfig(**QUICK, epochs=1, max_steps=2, out=str(tmp_path))
    for run in range(2):
        spy, lines = _DtypeSpy(), []
        result = fit(spy, config, log=lines.append)
        assert spy.dtypes == {expected}
        assert load_run_config(result.run_dir).cpu_amp is (expected == torch.bfloat16)
        (line,) = _said(lines)
        assert f"{bf16_ms:.1f} ms in bf16, 40.0 ms in float32" in line
        assert ("timed now" in line) is (run == 0)
        assert ("timed 2026-12-06" in line) is (run == 1)
        monkeypatch.setattr(PRECISION, "_time_steps", _not_called)
    (entry,) = json.loads((tmp_path / "cache" / "precision.json").read_text()).values()
    assert entry == {"float32": 0.040, "bf16": bf16_ms / 1e3, "date": "2026-12-06"}


def test_timing_leaves_the_run_as_a_float32_run_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real timed steps of both precisions (no minimum step, float32 always kept) on copies of
    the model: the run's weights equal a --no-cpu-amp run's, bit for bit."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(PRECISION, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(PRECISION, "MIN_STEP_S", 0.0)
    monkeypatch.setattr(PRECISION, "ROUND_S", 0.0)  # one step per timed round
    monkeypatch.setattr(PRECISION, "MARGIN", 1.0)  # bf16 would need a step of 0 s to win
    config = TrainConfig(**QUICK, epochs=1, max_steps=3, out=str(tmp_path / "runs"))
    timed = fit(get_task("classify"), config.replace(name="timed"), log=lambda _: None)
    forced = fit(
        get_task("classify"), config.replace(name="forced", cpu_amp=False), log=lambda _: None
    )
    (entry,) = json.loads((tmp_path / "cache" / "precision.json").read_text()).values()
    assert entry["float32"] > 0
    assert entry["bf16"] > 0
    a, b = (load_state(r.run_dir / "state" / "last.pt")["model"] for r in (timed, forced))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_memory_is_timed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "precision.json").write_text('{"x": {"float32": "fast"}, ')  # not JSON
    monkeypatch.setenv("ANTLERS_CACHE", str(cache))
    monkeypatch.setattr(PRECISION, "cpu_has_bf16", lambda: True)
    timing = PRECISION.Timing(0.004, None, "2026-12-06")  # too short a step to try bf16
    monkeypatch.setattr(PRECISION, "_time_steps", lambda *_: timing)
    lines: list[str] = []
    fit(
        get_task("classify"), TrainConfig(**QUICK, max_steps=1, out=str(tmp_path)), log=lines.append
    )
    assert "float32 step took 4.0 ms, too short to gain from bf16" in _said(lines)[0]
    (entry,) = json.loads((cache / "precision.json").read_text()).values()
    assert entry["bf16"] is None


def test_a_cache_that_cannot_be_written_costs_the_memory_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ANTLERS_CACHE", str(blocker))
    monkeypatch.setattr(PRECISION, "cpu_has_bf16", lambda: True)
    timing = PRECISION.Timing(0.040, 0.030, "2026-12-06")
    monkeypatch.setattr(PRECISION, "_time_steps", lambda *_: timing)
    lines: list[str] = []
    config = TrainConfig(**QUICK, max_steps=1, out=str(tmp_path / "runs"))
    result = fit(get_task("classify"), config, log=lines.append)
    assert "precision: bf16 autocast" in _said(lines)[0]
    assert "not remembered: File exists: " in _said(lines)[0]  # what mkdir says of the file
    assert _said(lines)[0].endswith(f"{blocker / 'precision.json'})")
    assert load_run_config(result.run_dir).cpu_amp is True


def test_cpu_has_bf16_agrees_with_the_cpu_flags() -> None:
    """torch's detection against the kernel's list of the CPU's features (Linux)."""
    from antlers.engine.precision import cpu_has_bf16

    cpuinfo = Path("/proc/cpuinfo")
    assert cpuinfo.is_file(), "a Linux test: CI runs on Linux, which has /proc/cpuinfo"
    flags = set(cpuinfo.read_text().split())
    assert cpu_has_bf16() == bool(flags & {"avx512_bf16", "amx_tile"})
