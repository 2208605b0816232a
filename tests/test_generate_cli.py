"""Diffusion end to end: training through the engine, Run.sample, ``antlers sample`` and --fid."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.engine.checkpoint import save_weights
from antlers.run import Run
from antlers.tasks.classify.models import build_classifier
from conftest import classify_config

if TYPE_CHECKING:
    from conftest import TrainedRun


def _digits_classes() -> list[str]:
    from antlers.data import load_dataset

    return list(load_dataset("digits", "test").classes)


def test_train_generate_on_digits_then_sample(generate_run: TrainedRun) -> None:
    run = Run.load(generate_run.path)  # unet_tiny, 1 epoch on digits
    assert run.config is not None
    assert run.config.optimizer == "adamw"
    assert run.config.ema == 0.999
    row = run.metrics[-1]
    assert 0 < row["val_loss"] < 1.5  # a noise prediction of zeros would score 1.0
    for name in ("samples.png", "schedule.png", "trajectory.png", "curves.png"):
        assert (generate_run.path / name).is_file()
    images = run.sample(6, steps=5, label="3", seed=2)
    assert images.shape == (6, 1, 8, 8)
    assert float(images.min()) >= 0
    assert float(images.max()) <= 1
    assert torch.equal(images, run.sample(6, steps=5, label="3", seed=2))
    with pytest.raises(ValueError, match="unknown class"):
        run.sample(2, label="cat")


def test_run_sample_refuses_other_tasks(classify_run: TrainedRun) -> None:
    with pytest.raises(ValueError, match="needs a 'generate' run"):
        Run.load(classify_run.path).sample(2)


def test_cli_sample_writes_grid_per_class_images_strip_and_gif(
    generate_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = _digits_classes()
    run = generate_run.path
    out = tmp_path / "out"
    argv = ["sample", str(run), "--n", "4", "--steps", "3", "--class", classes[7]]
    assert main([*argv, "--out", str(out), "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4 samples (ddim, 3 steps, guidance 3)"
    assert lines[2] == f"wrote 4 images under {out}/<class>/"
    assert sorted(p.name for p in (out / classes[7]).iterdir()) == [
        f"{i:04d}.png" for i in range(4)
    ]
    assert Image.open(out / classes[7] / "0000.png").size == (8, 8)
    assert Image.open(out / "grid.png").size[0] > 4 * 8
    gif = Image.open(out / "trajectory.gif")
    assert gif.n_frames >= 2  # x_T ... x_0 (Pillow merges identical frames)
    assert (out / "trajectory.png").is_file()
    assert main(["sample", str(run), "--class", "giraffe", "--out", str(out)]) == 2
    assert "unknown class 'giraffe'" in capsys.readouterr().err


def test_cli_sample_fid_prints_the_floor_and_class_share(
    generate_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = _digits_classes()
    run = generate_run.path
    config = classify_config("fast_resnet", 1, 8, classes=classes, data="digits")
    classifier = tmp_path / "clf"
    torch.manual_seed(0)
    weights = classifier / "weights" / "best.safetensors"
    save_weights(build_classifier(config), weights, config.to_dict())
    argv = ["sample", str(run), "--n", "20", "--steps", "2", "--out", str(tmp_path / "o")]
    assert main([*argv, "--fid", str(classifier)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("FID ")
    assert "(real-vs-real floor " in last
    assert "n=20)" in last
    assert "samples judged as their class" in last
