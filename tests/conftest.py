"""Shared test set-up: deterministic, polite with the machine's two shared cores, and one tiny
trained run per task for the tests that only read a finished run.

* ``home`` (automatic, session): a temporary HOME (so ``~/.cache/antlers`` and matplotlib's
  cache) and working folder (so a default ``runs/`` lands there): no test writes into the
  repository or the user's home.
* ``classify_run``, ``segment_run``, ``detect_run``, ``generate_run`` (session): each trained
  once through ``antlers train`` on built-in data (seed 0) in a few seconds. Tests must not
  change these folders; a test that resumes, extends or interrupts a run trains its own.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP threads that spin while waiting make 2-thread torch up to 10x slower than 1 thread when
# other work holds the shared cores; waiting passively removes that (read when torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# lecture_cnn at 16x16 on the 8x8 digits: small, fast, no padding (the sliding window is exact)
CLASSIFY = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16", "--epochs", "2"]
CLASSIFY += ["--batch-size", "128", "--lr", "0.2", "--device", "cpu"]  # 84% held-out accuracy


@dataclass(frozen=True)
class TrainedRun:
    """A finished run folder, the lines ``antlers train`` printed, and the data it trained on."""

    path: Path
    printed: list[str]
    data: str


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """Use 2 intra-op threads at most: CI machines have 2 cores shared with other work; under
    pytest-xdist, the cores shared among its workers (one thread each on 2 cores)."""
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True, scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary HOME and working folder for the whole session (subprocesses inherit both)."""
    root = tmp_path_factory.mktemp("home")
    (root / "work").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root))
        patch.delenv("ANTLERS_CACHE", raising=False)  # caches go to the temporary HOME
        patch.chdir(root / "work")
        yield root


def classify_config(
    model: str,
    channels: int,
    size: int,
    classes: int | Sequence[str] = 4,
    data: str = "test",
    tta_flip: bool = False,
) -> Any:
    """An untrained classifier's ClassifyConfig: square ``size`` images, ``classes`` (a count or
    the names), pixel statistics 0.5 / 0.25 per channel."""
    from antlers.tasks.classify.models import ClassifyConfig

    names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
    return ClassifyConfig(
        task="classify",
        model=model,
        data=data,
        in_channels=channels,
        image_size=(size, size),
        classes=tuple(names),
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        tta_flip=tta_flip,
    )


def finish_or_kill(proc: Any, timeout: float) -> str:
    """The combined output of a process group started with ``start_new_session=True``; the
    whole group is killed and the test failed when it runs past ``timeout`` seconds."""
    import signal
    import subprocess

    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0]
        pytest.fail(f"torchrun still running after {timeout} s:\n{output[-3000:]}")


def train_cli(task: str, options: list[str], out: Path, threads: int | None = None) -> TrainedRun:
    """``antlers train TASK OPTIONS --out OUT --name run``, its printed lines captured."""
    import torch

    from antlers.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = main(["train", task, *options, "--out", str(out), "--name", "run"])
    finally:
        torch.set_num_threads(before)
    assert code == 0, printed.getvalue()
    data = options[options.index("--data") + 1]
    return TrainedRun(out / task / "run", printed.getvalue().splitlines(), data)


@pytest.fixture(scope="session")
def classify_run(home: Path) -> TrainedRun:
    """lecture_cnn on digits at 16x16, 2 epochs (kernel snapshots and gradient norms logged)."""
    return train_cli("classify", CLASSIFY, home / "runs")


@pytest.fixture(scope="session")
def segment_run(home: Path) -> TrainedRun:
    """A small U-Net, 3 epochs on a mask folder (images/, masks/, classes.txt) of 30 built-in
    street scenes at 32x32; ``data`` is that folder."""
    from PIL import Image

    from antlers.data.street_scenes import SCENE_CLASSES, load_street_scenes

    data = home / "data" / "street"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "classes.txt").write_text("\n".join(SCENE_CLASSES) + "\n")
    scenes = load_street_scenes("train", image_size=32, n=30)
    for i in range(len(scenes)):
        image = scenes.images[i].permute(1, 2, 0).numpy()
        Image.fromarray(image).save(data / "images" / f"s{i}.png")
        Image.fromarray(scenes.masks[i].numpy(), mode="L").save(data / "masks" / f"s{i}.png")
    options = ["--data", str(data), "--model", "unet-w8-d2", "--epochs", "3"]
    options += ["--batch-size", "4", "--image-size", "32"]
    return train_cli("segment", options, home / "runs")


@pytest.fixture(scope="session")
def detect_run(home: Path) -> TrainedRun:
    """The two-stage detector, 1 epoch on a COCO copy of 20 built-in scenes (shapes only) at
    64x64, on one thread (faster than two on a loaded 2-core machine); ``data`` is the .json."""
    from antlers.data.coco_write import save_coco
    from antlers.data.object_scenes import load_object_scenes

    folder = home / "data" / "scenes_coco"
    folder.mkdir(parents=True)
    coco = save_coco(
        load_object_scenes("train", n=20, image_size=64, fashion=False), folder / "c.json"
    )
    options = ["--data", str(coco), "--image-size", "64", "--epochs", "1", "--batch-size", "8"]
    return train_cli("detect", options, home / "runs", threads=1)


@pytest.fixture(scope="session")
def generate_run(home: Path) -> TrainedRun:
    """unet_tiny diffusion on the 8x8 digits, 1 epoch."""
    options = ["--data", "digits", "--model", "unet_tiny", "--epochs", "1"]
    return train_cli("generate", options, home / "runs")
