"""What the engine records for explain (kernels per epoch, gradient norms), and the CLI commands
``antlers explain`` and ``antlers slide`` on a real (tiny) run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.config import TrainConfig
from antlers.engine.checkpoint import load_weights
from antlers.engine.fit import fit
from antlers.engine.monitor import load_kernels
from antlers.tasks import get_task

CONFIG = {
    "data": "digits",
    "model": "lecture_cnn",
    "image_size": 16,
    "batch_size": 128,
    "lr": 0.05,
    "device": "cpu",
    "epochs": 2,
}


def quiet(*_: object) -> None:
    pass


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    return fit(
        get_task("classify"), TrainConfig(**CONFIG, out=str(out), name="r"), log=quiet
    ).run_dir


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_kernels_are_saved_at_the_start_and_every_epoch(run_dir: Path) -> None:
    snapshots = load_kernels(run_dir)
    assert list(snapshots) == [0, 1, 2]
    task = get_task("classify")
    config = TrainConfig(**CONFIG)
    torch.manual_seed(config.seed)  # what fit does before building the model
    initial = task.build_model(task.load_data(config).meta)
    assert torch.equal(snapshots[0], initial[1].conv1.weight.detach())
    weights, _ = load_weights(run_dir / "weights" / "last.safetensors")
    assert torch.equal(snapshots[2], weights["1.conv1.weight"])
    assert not torch.equal(snapshots[0], snapshots[2])  # they learned


def test_gradient_norms_equal_autograd_at_the_first_step(run_dir: Path) -> None:
    rows = _rows(run_dir / "grad_norms.csv")
    assert list(rows[0]) == ["step", "epoch", "1.conv1", "1.conv2", "1.fc"]
    assert [int(r["step"]) for r in rows] == list(range(len(rows)))  # 11 steps/epoch: each one
    assert {r["epoch"] for r in rows} == {"1", "2"}
    task, config = get_task("classify"), TrainConfig(**CONFIG)
    data = task.load_data(config)
    torch.manual_seed(config.seed)
    model = task.build_model(data.meta)
    batch = next(data.train.epoch(0))
    task.loss(model, batch, label_smoothing=config.label_smoothing)["loss"].backward()
    for layer in ("conv1", "conv2", "fc"):
        norm = getattr(model[1], layer).weight.grad.norm().item()
        assert float(rows[0][f"1.{layer}"]) == pytest.approx(norm, rel=1e-4)
    assert (run_dir / "grad_norms.png").is_file()


def test_resumed_run_continues_the_gradient_log(run_dir: Path, tmp_path: Path) -> None:
    task, config = get_task("classify"), TrainConfig(**CONFIG, out=str(tmp_path), name="cut")
    first = fit(task, config.replace(max_steps=15), log=quiet)
    fit(task, config, resume=first.run_dir, log=quiet)
    assert _rows(first.run_dir / "grad_norms.csv") == _rows(run_dir / "grad_norms.csv")
    assert list(load_kernels(first.run_dir)) == [0, 1, 2]


def test_cli_explain_writes_every_figure(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inspect"
    assert main(["explain", str(run_dir), "--out", str(out), "--k", "4"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "359 digits test images, layer 1.pool2"
    names = ["kernels", "kernel_evolution", "feature_maps", "topk_1_pool2", "gradcam", "grad_norms"]
    assert printed[1:] == [f"wrote {out / name}.png" for name in names]
    for name in names:
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG"


def test_cli_slide_writes_heat_maps(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = np.zeros((40, 52), dtype=np.uint8)
    scene[20:36, 30:46] = 255
    Image.fromarray(scene).save(tmp_path / "scene.png")
    out = tmp_path / "slide"
    assert main(["slide", str(run_dir), str(tmp_path / "scene.png"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (
        "window 16x16, stride 4x4: 7x10 positions, equal to the classifier on each crop"
    )
    assert len(printed) == 1 + 10 + 1
    assert printed[-1] == f"wrote {out / 'heatmaps.png'}"
    assert (out / "heatmaps.png").is_file()


def test_cli_errors_are_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "small.png")
    assert main(["slide", str(run_dir), str(tmp_path / "small.png"), "--out", str(tmp_path)]) == 2
    assert "at least the window 16x16" in capsys.readouterr().err
    assert main(["explain", "no_such_model", "--out", str(tmp_path)]) == 2
    assert "not a run folder, a .safetensors file or a torchvision model" in capsys.readouterr().err


def test_cli_explain_a_torchvision_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rn"
    args = ["explain", "resnet18", "--layer", "layer1", "--limit", "12", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "12 shapes test images, layer layer1"
    assert f"wrote {out / 'topk_layer1.png'}" in printed
    assert not (out / "kernel_evolution.png").exists()  # no run, no history
