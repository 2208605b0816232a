"""Benchmark: the long fault campaign behind docs/reliability.md (faults while training, saving).

    .venv/bin/python benchmarks/faults.py              # records the section's campaign table
    .venv/bin/python benchmarks/faults.py --no-record --real 2

Ours: the tiny classify run of tests/faults.py (lecture_cnn on the digits, 2 epochs of 5 steps),
faulted at every one of its events (after each training step; in each atomic write: the
temporary file created, half of a write done, before the fsync, before the rename, after it):
a SIGKILL of a forked child there, ENOSPC raised at every moment of a write, EROFS at every
temporary file's creation. Each is checked as the suite checks its 50 (tests/test_faults_kill.py):
the checkpoints left are exactly those completed, Run.load finds them, the resume ends bit for
bit as the uninterrupted run, no temporary file is left. Then ``--real`` real `antlers train`
processes SIGKILLed at a uniformly random time of their run and continued with `antlers train
--resume`. The baseline, in the same process: the same SIGKILLs with writes that go straight to
the file (open, write, close: no temporary file, no rename), counting the kills after which a
checkpoint is damaged or the resumed run differs. Target: nothing lost by ours.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import errno
import io
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
import torch

from common import REPO, cpu_model, record_section

sys.path.insert(0, str(REPO / "tests"))
from antlers.config import TrainConfig
from antlers.engine.checkpoint import CheckpointError, load_state
from antlers.engine.fit import fit
from antlers.io import files
from faults import (
    TINY,
    Injector,
    Reference,
    ReportlessTask,
    cheap_figures,
    check_found,
    check_resume,
    digest,
    disk_full,
    found_after_fault,
    kill_and_resume,
    kill_at,
    quiet,
    record_reference,
)

RELIABILITY_MD = REPO / "docs" / "reliability.md"
HEADING = "## Faults while training and saving"


def kills(reference: Reference, out: Path) -> tuple[int, int, list[str]]:
    """SIGKILL at every event: (tried, lost, the first problems)."""
    lost, problems = 0, []
    for event in range(len(reference.events)):
        config = TrainConfig(**TINY, out=str(out), name=f"kill{event}")
        outcome = kill_and_resume(reference, event, config)
        lost += bool(outcome.problems)
        problems += [f"kill at {reference.events[event]}: {p}" for p in outcome.problems]
    return len(reference.events), lost, problems


def disk_faults(reference: Reference, out: Path, code: int, moments: set[str]) -> tuple:
    """``code`` (ENOSPC, EROFS) raised at every event of the ``moments`` kinds."""
    tried, lost, problems = 0, 0, []
    for event, (moment, target) in enumerate(reference.events):
        if moment not in moments:
            continue
        tried += 1
        config = TrainConfig(**TINY, out=str(out), name=f"disk{code}-{event}")
        run_dir = out / "classify" / f"disk{code}-{event}"
        found: list[str] = []
        with pytest.MonkeyPatch.context() as patch:
            Injector(at=event, fault=disk_full(code)).install(patch.setattr)
            try:
                fit(ReportlessTask(), config, log=quiet)
                found.append("no error raised")
            except OSError as error:
                path = run_dir / os.path.relpath(target, reference.run_dir)
                if str(error) != f"[Errno {code}] {os.strerror(code)}: '{path}'":
                    found.append(f"said {error!s}")
        found += check_found(reference, event, run_dir) + check_resume(reference, config, run_dir)
        lost += bool(found)
        problems += [f"{os.strerror(code)} at {(moment, target)}: {p}" for p in found]
    return tried, lost, problems


def naive_write_with(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """The baseline: straight into the file (through ``files.os``, so the injector sees it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    injector = files.os
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if isinstance(injector, Injector):
        injector.target = str(path)
        injector.event("open", str(path))
    with injector.fdopen(fd, "wb") as f:
        write(f)
    if isinstance(injector, Injector):
        injector.event("replaced", str(path))
    return path


def baseline_kills(reference: Reference, out: Path) -> tuple[int, int, list[str]]:
    """SIGKILL at every event of a run whose writes are naive: kills that lost something."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "atomic_write_with", naive_write_with)
        counter = Injector()
        with pytest.MonkeyPatch.context() as inner:
            counter.install(inner.setattr)
            fit(ReportlessTask(), TrainConfig(**TINY, out=str(out), name="naive-count"), log=quiet)
        lost, problems = 0, []
        for event in range(len(counter.events)):
            config = TrainConfig(**TINY, out=str(out), name=f"naive{event}")
            run_dir = out / "classify" / f"naive{event}"
            kill_at(event, config)
            try:
                found_after_fault(run_dir)
                found = []
            except CheckpointError as error:  # a damaged file is what we count
                found = [f"damaged: {error}"]
            found += check_resume(reference, config, run_dir)
            lost += bool(found)
            problems += [f"naive kill at {counter.events[event]}: {p}" for p in found]
    return len(counter.events), lost, problems


def real_kills(trials: int, out: Path, seed: int) -> tuple[int, int, int, list[str]]:
    """`antlers train` SIGKILLed at a uniformly random time of its run, then `--resume`:
    (tried, killed before any file, lost, problems)."""
    from antlers.cli import main

    options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16", "--epochs", "3"]
    options += ["--batch-size", "64", "--lr", "0.05", "--device", "cpu"]
    command = [sys.executable, "-m", "antlers", "train", "classify", *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(
        [*command, "--out", str(out / "whole")], env=env, check=True, capture_output=True
    )
    duration = time.perf_counter() - start
    whole = digest(load_state(out / "whole" / "classify" / "exp" / "state" / "last.pt")["model"])
    rng, early, lost, problems = random.Random(seed), 0, 0, []
    for trial in range(trials):
        folder = out / f"real{trial}"
        proc = subprocess.Popen(
            [*command, "--out", str(folder)], env=env, stdout=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run_dir = folder / "classify" / "exp"
        if not (run_dir / "config.json").exists():
            early += 1  # killed before the run folder had its config: nothing to continue
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["train", "classify", "--resume", str(run_dir)])
        final = digest(load_state(run_dir / "state" / "last.pt")["model"]) if code == 0 else None
        if final != whole:
            lost += 1
            problems.append(f"real kill {trial}: resume exit {code}, weights {final} != {whole}")
    return trials, early, lost, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--real", type=int, default=20, help="real processes killed (default 20)")
    parser.add_argument("--out", default="/tmp/antlers-faults", help="scratch folder")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the forked children run on one thread: the same arithmetic
    out = Path(args.out) / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    rows, problems = [], []
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        cheap_figures(patch.setattr)
        reference = record_reference(TrainConfig(**TINY, out=str(out), name="reference"))
        tried, lost, found = kills(reference, out)
        rows.append(("SIGKILL at every event of a run, then resume", tried, lost))
        problems += found
        writes = {"open", "write", "fsync", "replace"}
        tried, lost, found = disk_faults(reference, out, errno.ENOSPC, writes)
        rows.append(("ENOSPC at every moment of every write, then resume", tried, lost))
        problems += found
        tried, lost, found = disk_faults(reference, out, errno.EROFS, {"open"})
        rows.append(("EROFS at every temporary file's creation, then resume", tried, lost))
        problems += found
        tried, lost, found = baseline_kills(reference, out)
        baseline = (tried, lost)
        problems_baseline = found
    tried, early, lost, found = real_kills(args.real, out, seed=21)
    real = f"`antlers train` SIGKILLed at a random time ({early} before its config.json)"
    rows.append((real, tried, lost))
    problems += found
    seconds = time.perf_counter() - started
    print(*problems[:20], sep="\n")
    lines = [
        HEADING,
        f"Recorded {datetime.date.today()} by `benchmarks/faults.py` on {cpu_model()}, 1 thread, "
        f"float32, torch {torch.__version__}; {len(reference.events)} events in the run; "
        f"{seconds:.0f} s in all.",
        "",
        "| injected (campaign) | times | survived | lost |",
        "|---|---:|---:|---:|",
        *[f"| {what} | {n} | {n - bad} | {bad} |" for what, n, bad in rows],
        f"| baseline: SIGKILL at every event, writes straight to the file | {baseline[0]} | "
        f"{baseline[0] - baseline[1]} | {baseline[1]} |",
    ]
    ours_lost = sum(bad for _, _, bad in rows)
    print("\n".join(lines[1:]))
    print(f"lost: ours {ours_lost}, baseline {baseline[1]} of {baseline[0]}")
    print(*problems_baseline[:5], sep="\n")
    if not args.no_record:
        record_section(lines, RELIABILITY_MD)


if __name__ == "__main__":
    main()
