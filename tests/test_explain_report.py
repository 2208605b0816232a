"""``antlers explain`` and ``antlers slide`` (``explain/report.py``) on the session's tiny
classifier (lecture_cnn on digits at 16x16) and on an untrained torchvision model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from antlers.cli import main

if TYPE_CHECKING:
    from conftest import TrainedRun


@pytest.fixture
def run_dir(classify_run: TrainedRun) -> Path:
    return classify_run.path


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
