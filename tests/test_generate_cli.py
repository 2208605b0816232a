"""Diffusion end to end: training through the engine, Run.sample, ``antlers sample`` and --fid."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.engine.checkpoint import save_weights
from antlers.run import Run, train
from antlers.tasks.classify.models import build_classifier
from antlers.tasks.generate.task import GenerateTask


def _digits_classes() -> list[str]:
    from antlers.data import load_dataset

    return list(load_dataset("digits", "test").classes)


def _generate_run(folder, classes: list[str]):
    meta = {
        "task": "generate",
        "model": "unet_tiny",
        "in_channels": 1,
        "image_size": [8, 8],
        "classes": classes,
        "data": "digits",
        "noise_schedule": "cosine",
        "timesteps": 1000,
    }
    torch.manual_seed(0)
    model = GenerateTask().build_model(meta)
    for p in model.parameters():  # not the zero-initialised output of an untrained model
        if not p.any():
            torch.nn.init.normal_(p, std=0.02)
    save_weights(model, folder / "weights" / "best.safetensors", meta)
    return folder


def test_train_generate_on_digits_then_sample(tmp_path):
    run = train("generate", data="digits", model="unet_tiny", epochs=1, out=str(tmp_path), name="g")
    assert run.config.optimizer == "adamw"
    assert run.config.ema == 0.999
    row = run.metrics[-1]
    assert 0 < row["val_loss"] < 1.5  # a noise prediction of zeros would score 1.0
    for name in ("samples.png", "schedule.png", "trajectory.png", "curves.png"):
        assert (tmp_path / "generate" / "g" / name).is_file()
    images = run.sample(6, steps=5, label="3", seed=2)
    assert images.shape == (6, 1, 8, 8)
    assert float(images.min()) >= 0
    assert float(images.max()) <= 1
    assert torch.equal(images, run.sample(6, steps=5, label="3", seed=2))
    with pytest.raises(ValueError, match="unknown class"):
        run.sample(2, label="cat")


def test_run_sample_refuses_other_tasks(tmp_path):
    meta = {
        "task": "classify",
        "model": "fast_resnet",
        "in_channels": 1,
        "image_size": [8, 8],
        "classes": ["a", "b"],
        "mean": [0.5],
        "std": [0.25],
    }
    save_weights(build_classifier(meta), tmp_path / "weights" / "best.safetensors", meta)
    with pytest.raises(ValueError, match="needs a 'generate' run"):
        Run.load(tmp_path).sample(2)


def test_cli_sample_writes_grid_per_class_images_strip_and_gif(tmp_path, capsys):
    classes = _digits_classes()
    run = _generate_run(tmp_path / "run", classes)
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


def test_cli_sample_fid_prints_the_floor_and_class_share(tmp_path, capsys):
    classes = _digits_classes()
    run = _generate_run(tmp_path / "run", classes)
    meta = {
        "task": "classify",
        "model": "fast_resnet",
        "in_channels": 1,
        "image_size": [8, 8],
        "classes": classes,
        "mean": [0.3],
        "std": [0.3],
    }
    classifier = tmp_path / "clf"
    torch.manual_seed(0)
    save_weights(build_classifier(meta), classifier / "weights" / "best.safetensors", meta)
    argv = ["sample", str(run), "--n", "20", "--steps", "2", "--out", str(tmp_path / "o")]
    assert main([*argv, "--fid", str(classifier)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("FID ")
    assert "(real-vs-real floor " in last
    assert "n=20)" in last
    assert "samples judged as their class" in last
