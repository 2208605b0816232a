"""Kill at any moment: a training run SIGKILLed anywhere (between steps, inside a save: before,
during and after writing a file's temporary copy, around its rename) leaves only complete
checkpoints, those it had finished; ``Run.load`` finds them and a resume ends with the weights
of the uninterrupted run, bit for bit (CPU, same seed). The same for a disk that fills up or
turns read-only mid-run, and two runs started at once get two folders. docs/reliability.md has
the figures."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from antlers.config import TrainConfig, load_run_config
from antlers.engine.checkpoint import load_state
from antlers.engine.fit import fit
from antlers.engine.monitor import first_conv, load_kernels
from antlers.engine.runfolder import new_run_dir
from antlers.io.files import TEMPORARY_GLOB
from antlers.run import Run
from faults import (
    CHECKPOINTS,
    TINY,
    Injector,
    Reference,
    ReportlessTask,
    cheap_figures,
    digest,
    disk_full,
    found_after_fault,
    kill_and_resume,
    kill_at,
    quiet,
    record_reference,
)

KILLS = 30  # kill points of the in-suite campaign; benchmarks/faults.py runs every event


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """The uninterrupted tiny run (one thread: its forked children must not need OpenMP's pool),
    with the module's cheap figures in place for every run the tests below train."""
    out = tmp_path_factory.mktemp("reference")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            cheap_figures(patch.setattr)
            yield record_reference(TrainConfig(**TINY, out=str(out), name="reference"))
    finally:
        torch.set_num_threads(before)


def test_sigkill_at_random_moments_then_resume(reference: Reference, tmp_path: Path) -> None:
    events = reference.events
    points = sorted(random.Random(21).sample(range(len(events)), KILLS))
    moments = Counter(events[i][0] for i in points)
    assert {"step", "open", "write", "fsync", "replace", "replaced"} == set(moments)  # all kinds
    leftovers = 0
    for n, event in enumerate(points):
        config = TrainConfig(**TINY, out=str(tmp_path), name=f"kill{n}")
        outcome = kill_and_resume(reference, event, config)
        assert outcome.problems == [], (event, events[event])
        leftovers += outcome.leftovers
    assert leftovers  # some kills left a temporary file, and the resume removed it


def test_weights_killed_just_after_they_are_written_find_their_kernel_snapshot(
    reference: Reference, tmp_path: Path
) -> None:
    """Killed right after a weights file's rename, the run folder already holds the kernels of
    that epoch (what the explain report and tour show beside those weights)."""
    events = reference.events
    renamed = [i for i, e in enumerate(events) if e[0] == "replaced" and "weights/" in e[1]]
    assert len(renamed) >= 2
    for n, event in enumerate(renamed[:2]):  # last.safetensors and best.safetensors of epoch 1
        config = TrainConfig(**TINY, out=str(tmp_path), name=f"renamed{n}")
        assert kill_at(event, config) == -signal.SIGKILL
        run_dir = tmp_path / "classify" / f"renamed{n}"
        run = Run.load(run_dir)
        kernels = load_kernels(run_dir)
        assert run.epoch in kernels, (events[event], sorted(kernels))
        _, conv = first_conv(run.model)  # type: ignore[misc]
        assert torch.equal(conv.weight, kernels[run.epoch])


@pytest.mark.parametrize(
    ("code", "moment", "name"),
    [
        (errno.ENOSPC, "write", "state/last.pt"),
        (errno.ENOSPC, "fsync", "weights/best.safetensors"),
        (errno.EROFS, "open", "weights/last.safetensors"),
    ],
)
def test_disk_full_in_the_second_epoch_keeps_the_first(
    reference: Reference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    moment: str,
    name: str,
) -> None:
    """ENOSPC or EROFS the second time ``name`` is written (epoch 2's save): one OSError line
    naming it and the cause, the first epoch's checkpoints intact, and once there is room again
    the resume ends where the uninterrupted run did."""
    event = [i for i, e in enumerate(reference.events) if e[0] == moment and e[1].endswith(name)][1]
    config = TrainConfig(**TINY, out=str(tmp_path), name="full")
    run_dir = tmp_path / "classify" / "full"
    with monkeypatch.context() as patch:
        Injector(at=event, fault=disk_full(code)).install(patch.setattr)
        with pytest.raises(OSError, match=os.strerror(code)) as raised:
            fit(ReportlessTask(), config, log=quiet)
    assert str(raised.value) == f"[Errno {code}] {os.strerror(code)}: '{run_dir / name}'"
    assert found_after_fault(run_dir) == {n: reference.expected(n, event) for n in CHECKPOINTS}
    assert load_state(run_dir / "state" / "last.pt")["loop"]["epoch"] == 1
    assert not list(run_dir.rglob(TEMPORARY_GLOB))
    fit(ReportlessTask(), config, resume=run_dir, log=quiet)
    assert found_after_fault(run_dir) == reference.final


def test_antlers_train_on_a_full_disk_ends_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`antlers train` whose first save finds the disk full: one line naming the file and the
    cause, a non-zero exit status, nothing left half-written."""
    from antlers.cli import main

    class FullDisk(Injector):  # full from the moment the first state/last.pt is written
        def event(self, moment: str, what: str) -> None:
            if moment == "write" and what.endswith("last.pt"):
                disk_full(errno.ENOSPC)()

    FullDisk().install(monkeypatch.setattr)
    options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16", "--epochs", "1"]
    code = main(["train", "classify", *options, "--device", "cpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err  # the progress lines, then the error's
    assert code != 0
    assert "Traceback" not in err
    line = err.splitlines()[-1]
    assert line.startswith("antlers: error: ")
    assert str(tmp_path / "classify" / "exp" / "state" / "last.pt") in line
    assert "No space left on device" in line
    assert not list(tmp_path.rglob(TEMPORARY_GLOB))


def test_two_runs_started_at_once_get_two_folders(reference: Reference, tmp_path: Path) -> None:
    """Two forked `antlers train` processes released at the same moment, same --out, no name
    (``reference`` for its single torch thread: a forked child cannot use OpenMP's pool)."""
    from antlers.cli import main

    start_read, start_write = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # a child: wait for the start, train one step, never return into pytest
            code = 3
            try:
                os.read(start_read, 1)
                options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16"]
                code = main(["train", "classify", *options, "--device", "cpu", "--max-steps", "1",
                             "--out", str(tmp_path)])  # fmt: skip
            finally:
                os._exit(code)
        children.append(pid)
    os.write(start_write, b"go")
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert codes == [0, 0]
    folders = sorted(p.name for p in (tmp_path / "classify").iterdir())
    assert folders == ["exp", "exp2"]
    for name in folders:  # each run wrote its own complete state
        assert load_state(tmp_path / "classify" / name / "state" / "last.pt")["loop"]["step"] == 1


def test_a_run_folder_is_created_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a look says (another process may create the folder right after it), two new
    runs never get the same folder: here every look says "free"."""
    monkeypatch.setattr(Path, "exists", lambda self: False)
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    made = [new_run_dir(tmp_path, "classify", None) for _ in range(3)]
    assert [p.name for p in made] == ["exp", "exp2", "exp3"]
    assert all(p.stat().st_nlink for p in made)  # created, not just named


def test_antlers_train_killed_at_random_times_resumes_with_antlers_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `antlers train` process, SIGKILLed at a seeded random time after its first epoch,
    then `antlers train --resume`: the weights of the uninterrupted run, bit for bit. (The
    resume, in this process, skips the figures and the report: weights are under test.)"""
    from antlers.cli import main
    from antlers.tasks.classify.task import ClassifyTask

    cheap_figures(monkeypatch.setattr)
    monkeypatch.setattr(ClassifyTask, "report", lambda *_: None)

    options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16"]
    options += ["--epochs", "3", "--batch-size", "64", "--lr", "0.05", "--device", "cpu"]
    rng, whole = random.Random(5), None
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocess (OMP_NUM_THREADS=1): the same arithmetic
    try:
        for trial in range(2):
            run_dir = tmp_path / f"killed{trial}" / "classify" / "exp"
            killed = _kill_antlers_train(options, run_dir.parents[1], rng.uniform(0.0, 0.4))
            if whole is None:  # the uninterrupted run of the same config, without its report
                config = load_run_config(run_dir).replace(out=str(tmp_path), name="whole")
                whole = fit(ReportlessTask(), config, log=quiet).run_dir / "state" / "last.pt"
            if killed:
                run = Run.load(run_dir)  # the best epoch saved so far, as its kernel snapshot says
                _, conv = first_conv(run.model)  # type: ignore[misc]
                assert torch.equal(conv.weight, load_kernels(run_dir)[run.epoch])
            assert main(["train", "classify", "--resume", str(run_dir)]) == 0
            resumed = load_state(run_dir / "state" / "last.pt")
            assert digest(resumed["model"]) == digest(load_state(whole)["model"])
    finally:
        torch.set_num_threads(before)


def _kill_antlers_train(options: list[str], out: Path, delay: float) -> bool:
    """Start `antlers train`, SIGKILL it ``delay`` seconds after it printed its first epoch;
    whether it was killed (False: it had finished first)."""
    command = [sys.executable, "-m", "antlers", "train", "classify", *options, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:  # epoch 1 is saved: kill somewhere in the rest
        if line.startswith("epoch 1:"):
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode in (-signal.SIGKILL, 0)
    return proc.returncode == -signal.SIGKILL
