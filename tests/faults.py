"""Fault injection for tests/test_faults_*.py and benchmarks/faults.py (not a test module).

* ``Injector`` stands in for the ``os`` and ``tempfile`` modules of ``antlers.io.files`` and for
  ``Trainer.step``: it numbers every moment of a run where a fault can strike (after a training
  step; in each atomic write: the temporary file created, half of a write done, before the
  fsync, before the rename, after the rename) and calls ``fault()`` at the chosen one. Nothing
  in antlers knows about it: the tests patch it in.
* ``Reference`` is an uninterrupted run with the fingerprint of each checkpoint file after every
  rename, so that after a fault at event ``i`` the files on disk can be checked against the ones
  the run had completed by then.
* ``kill_at`` forks the test process (no second start of Python and torch), lets the child
  train until event ``i`` and SIGKILLs it there; ``kill_and_resume`` then checks what it left
  and resumes it.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import signal
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import torch

from antlers.config import TrainConfig
from antlers.engine import monitor
from antlers.engine import trainer as trainer_module
from antlers.engine.checkpoint import CheckpointError, load_state, load_weights
from antlers.engine.fit import fit
from antlers.io import files
from antlers.tasks import get_task

# lecture_cnn on the 8x8 digits at 16x16: 2 epochs of 5 steps, about 100 events
TINY = {"data": "digits", "model": "lecture_cnn", "image_size": 16, "batch_size": 256}
TINY |= {"lr": 0.05, "epochs": 2, "device": "cpu", "seed": 0}
# float32 given: a timed precision choice would write its cache (events the first run alone
# counts) and could differ between the reference and a resumed run
TINY |= {"cpu_amp": False}
# the files whose content a fault must never damage: resume and Run.load read them
CHECKPOINTS = ("state/last.pt", "weights/last.safetensors", "weights/best.safetensors")

Event = tuple[str, str]  # (moment, file name or step number)


def quiet(*_: object, **__: object) -> None:
    pass


def sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def disk_full(code: int = errno.ENOSPC) -> Callable[[], None]:
    """A fault that raises the OSError a full (ENOSPC) or read-only (EROFS) disk raises."""

    def fault() -> None:
        raise OSError(code, os.strerror(code))

    return fault


class Injector:
    """Counts the events of a run in ``events`` and calls ``fault`` at event number ``at``.

    Installed as ``files.os`` and ``files.tempfile`` (it serves both: ``mkstemp`` is the one
    tempfile name that antlers.io.files uses, every other name goes to the real ``os``)."""

    def __init__(self, at: int | None = None, fault: Callable[[], None] = sigkill) -> None:
        self.at, self.fault = at, fault
        self.events: list[Event] = []
        self.target = ""  # the file being written
        self.folders: set[int] = set()  # descriptors of folders opened to be fsync'ed

    def event(self, moment: str, what: str) -> None:
        self.events.append((moment, what))
        if len(self.events) - 1 == self.at:
            self.fault()

    def install(self, setattr_: Callable[[Any, str, Any], None]) -> None:
        """Patch it in with ``monkeypatch.setattr`` (or ``setattr`` in a forked child)."""
        setattr_(files, "os", self)
        setattr_(files, "tempfile", self)
        step = trainer_module.Trainer.step

        def counted(trainer: Any, batch: Any, progress: float) -> float:
            loss = step(trainer, batch, progress)
            self.event("step", str(trainer.loop.step))
            return loss

        setattr_(trainer_module.Trainer, "step", counted)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def mkstemp(self, prefix: str, suffix: str, dir: Path) -> tuple[int, str]:
        self.target = str(Path(dir, prefix[1:-1]))
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        try:  # a kill here leaves the empty file; an OSError is mkstemp's own: nothing left
            self.event("open", self.target)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        return fd, tmp

    def fdopen(self, fd: int, mode: str) -> _File:
        return _File(os.fdopen(fd, mode), self)

    def open(self, path: Path, flags: int) -> int:
        fd = os.open(path, flags)
        self.folders.add(fd)  # only folders are opened with os.open (to fsync them)
        return fd

    def close(self, fd: int) -> None:
        self.folders.discard(fd)
        os.close(fd)

    def fsync(self, fd: int) -> None:
        if fd not in self.folders:  # the folder's fsync, after the rename, is not an event
            self.event("fsync", self.target)
        os.fsync(fd)

    def replace(self, source: str, target: Path) -> None:
        self.event("replace", str(target))
        os.replace(source, target)
        self.event("replaced", str(target))


class _File:
    """A binary file whose every write is an event struck after half of the bytes."""

    def __init__(self, file: IO[bytes], injector: Injector) -> None:
        self.file, self.injector = file, injector

    def write(self, data: bytes) -> int:
        half = len(data) // 2
        self.file.write(data[:half])
        self.file.flush()
        self.injector.event("write", self.injector.target)
        return half + self.file.write(data[half:])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


class ReportlessTask:
    """A task whose end-of-run report is skipped and whose curves.png is a stand-in: the figures
    cost most of a tiny run, and checkpoints, not figures, are under test here."""

    def __init__(self, name: str = "classify") -> None:
        self.task = get_task(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)

    def configure(self, config: TrainConfig) -> ReportlessTask:
        self.task = self.task.configure(config)
        return self

    def report(self, *_: object) -> None:
        pass


def cheap_figures(monkeypatch_setattr: Callable[[Any, str, Any], None]) -> None:
    """curves.png and grad_norms.png as a few bytes, still written atomically (still events)."""
    monkeypatch_setattr(
        trainer_module, "write_curves", lambda rows, path: files.atomic_write(path, b"curves")
    )

    def grad_norms(rows: Any, run_dir: Path, plot: bool = False) -> None:
        monitor.write_grad_norms(rows, run_dir)

    fit_module = importlib.import_module("antlers.engine.fit")  # antlers.engine.fit: the function
    monkeypatch_setattr(fit_module, "write_grad_norms", grad_norms)


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(path: Path) -> tuple[Any, ...] | None:
    """What a checkpoint file holds, minus the clock: None when absent, else for a state
    (epoch, step, best epoch, validation history, weights digest), for weights (epoch, digest).
    A damaged file raises CheckpointError."""
    if not path.exists():
        return None
    if path.suffix == ".pt":
        state = load_state(path)
        loop = state["loop"]
        history = [tuple(v for k, v in r.items() if k.startswith("val_")) for r in loop["history"]]
        return (loop["epoch"], loop["step"], loop["best_epoch"], history, digest(state["model"]))
    tensors, meta = load_weights(path)
    return (meta["epoch"], digest(tensors))


@dataclass
class Reference:
    """An uninterrupted run: its events and, per checkpoint file, (event, fingerprint) after
    every rename of it."""

    run_dir: Path
    events: list[Event] = field(default_factory=list)
    saved: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)

    def expected(self, name: str, killed_at: int) -> Any:
        """The fingerprint ``name`` must have after a fault at event ``killed_at``: that of its
        last rename done by then (the ``replaced`` event comes after the rename)."""
        done = [print_ for i, print_ in self.saved.get(name, []) if i <= killed_at]
        return done[-1] if done else None

    @property
    def final(self) -> dict[str, Any]:
        return {name: self.expected(name, len(self.events)) for name in CHECKPOINTS}


def record_reference(config: TrainConfig) -> Reference:
    """Train ``config`` uninterrupted, fingerprinting each checkpoint file as it is renamed."""
    run_dir = Path(config.out) / "classify" / str(config.name)
    reference = Reference(run_dir)

    class Recorder(Injector):
        def event(self, moment: str, what: str) -> None:
            super().event(moment, what)
            name = os.path.relpath(what, run_dir) if moment == "replaced" else ""
            if name in CHECKPOINTS:
                index = len(self.events) - 1
                reference.saved.setdefault(name, []).append((index, fingerprint(Path(what))))

    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        recorder.install(patch.setattr)
        fit(ReportlessTask(), config, log=quiet)
    reference.events = recorder.events
    return reference


def kill_at(event: int, config: TrainConfig) -> int:
    """Train ``config`` in a forked child that SIGKILLs itself at ``event``; its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            injector = Injector(at=event, fault=sigkill)
            injector.install(setattr)
            fit(ReportlessTask(), config, log=quiet)
            code = 0  # the event never came
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def found_after_fault(run_dir: Path) -> dict[str, Any]:
    """The fingerprints of the checkpoint files a faulted run left."""
    return {name: fingerprint(run_dir / name) for name in CHECKPOINTS}


@dataclass
class Outcome:
    """What a fault did: ``problems`` (empty: nothing lost), whether temporary files were left."""

    problems: list[str] = field(default_factory=list)
    leftovers: bool = False


def kill_and_resume(reference: Reference, event: int, config: TrainConfig) -> Outcome:
    """SIGKILL a run of ``config`` at ``event``; check that it left exactly the checkpoints the
    reference had completed by then and that Run.load finds them; resume it; check that it ends
    as the reference did, with no temporary file left."""
    outcome, run_dir = Outcome(), Path(config.out) / "classify" / str(config.name)
    code = kill_at(event, config)
    if code != -signal.SIGKILL:
        outcome.problems.append(f"the child was not killed (exit code {code})")
    outcome.problems += check_found(reference, event, run_dir)
    outcome.leftovers = bool(list(run_dir.rglob(files.TEMPORARY_GLOB)))
    outcome.problems += check_resume(reference, config, run_dir)
    return outcome


def check_found(reference: Reference, event: int, run_dir: Path) -> list[str]:
    """Problems with what a run faulted at ``event`` left: a damaged or unexpected checkpoint,
    or Run.load not giving the best (else last) weights written so far."""
    from antlers.run import Run

    expected = {name: reference.expected(name, event) for name in CHECKPOINTS}
    try:
        found = found_after_fault(run_dir)
    except CheckpointError as error:
        return [f"damaged: {error}"]
    if found != expected:
        return [f"found {found}, expected {expected}"]
    chosen = expected["weights/best.safetensors"] or expected["weights/last.safetensors"]
    try:
        run = Run.load(run_dir)
    except CheckpointError as error:
        return [] if chosen is None else [f"Run.load: {error}"]
    loaded = (run.epoch, digest(run.model.state_dict()))
    return [] if loaded == chosen else [f"Run.load gave {loaded}, expected {chosen}"]


def check_resume(reference: Reference, config: TrainConfig, run_dir: Path) -> list[str]:
    """Problems with resuming ``run_dir``: an error, other final checkpoints, files left."""
    try:
        fit(ReportlessTask(), config, resume=run_dir, log=quiet)
        final = found_after_fault(run_dir)
    except (CheckpointError, OSError, ValueError) as error:
        return [f"resume: {error}"]
    problems = [] if final == reference.final else [f"resumed to {final}"]
    left = list(run_dir.rglob(files.TEMPORARY_GLOB))
    return problems + ([f"temporary files left: {left}"] if left else [])
