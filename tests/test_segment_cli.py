"""Segmentation end to end: train on a mask folder from the CLI, eval --json, predict files
(mask PNG of class ids + overlay), Run.predict shapes, and the report's figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.data.street_scenes import SCENE_CLASSES, load_street_scenes
from antlers.run import Run

if TYPE_CHECKING:
    from conftest import TrainedRun


def test_train_prints_miou_and_writes_the_run_folder(segment_run: TrainedRun) -> None:
    run, lines = segment_run.path, segment_run.printed
    assert re.match(r"done \(epochs\): epoch 3, .*val_miou 0\.\d{4}", lines[-2]), lines[-2]
    assert lines[-1] == f"results in {run}"
    for name in ("overlays.png", "iou.png", "confusion.png", "curves.png", "report.html"):
        assert (run / name).is_file(), name
    assert "test mIoU" in (run / "report.html").read_text()
    assert (run / "weights" / "best.safetensors").is_file()


def test_eval_scores_the_test_split_and_rebuilds_the_validation_split(
    segment_run: TrainedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    run = segment_run.path
    summary = json.loads((run / "metrics.json").read_text())
    assert main(["eval", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["split"], metrics["count"]) == ("test", 6)  # the folder's 20% of 30 scenes
    assert metrics["miou"] == pytest.approx(summary["test_miou"], abs=1e-6)
    assert 0 <= metrics["pixel_accuracy"] <= 1
    assert "iou_road" in metrics
    assert main(["eval", str(run), "--split", "val", "--json"]) == 0
    val = json.loads(capsys.readouterr().out)
    assert val["count"] == 2  # 10% of the 24 training scenes, held out with the run's seed
    best = max(row["val_miou"] for row in Run.load(run).metrics)
    assert val["miou"] == pytest.approx(best, abs=2e-3) == summary["val_miou"]
    rows = Run.load(run).metrics
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]  # it learns


def test_predict_writes_a_mask_and_an_overlay(
    segment_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data = segment_run.path, Path(segment_run.data)
    wide = tmp_path / "wide.jpg"
    Image.fromarray(
        load_street_scenes("test", image_size=48, n=1).images[0].permute(1, 2, 0).numpy()
    ).resize((60, 45)).save(wide)
    images = [str(data / "images" / "s0.png"), str(wide)]
    out = tmp_path / "out"
    assert main(["predict", str(run), *images, "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["size"] for r in rows] == [[32, 32], [45, 60]]  # (H, W) of each input image
    for row, stem in zip(rows, ("s0", "wide"), strict=True):
        with Image.open(out / f"{stem}_mask.png") as mask:
            assert mask.mode == "P"
            assert mask.size == tuple(row["size"][::-1])
            ids = np.asarray(mask)
        assert ids.max() < len(SCENE_CLASSES)
        assert sum(row["classes"].values()) == pytest.approx(1, abs=1e-3)
        with Image.open(out / f"{stem}_overlay.png") as overlay:
            assert overlay.format == "PNG"
            assert overlay.width > 60
        assert row["text"].startswith(f"{images[rows.index(row)]}: ")
    # the mask file holds exactly what Run.predict returns for the same image
    loaded = Run.load(run)
    with Image.open(images[0]) as im:
        predicted = loaded.predict([im]).masks
    assert predicted.shape == (1, 32, 32)
    assert predicted.dtype == torch.int64
    with Image.open(out / "s0_mask.png") as mask:
        assert torch.equal(predicted[0], torch.from_numpy(np.asarray(mask).astype(np.int64)))


def test_run_predict_on_tensors_keeps_their_size(segment_run: TrainedRun) -> None:
    run = segment_run.path
    loaded = Run.load(run)
    for shape in ((2, 3, 32, 32), (1, 3, 40, 52)):
        result = loaded.predict(torch.rand(*shape))
        ids = result.masks
        assert len(result) == shape[0]
        assert [row["size"] for row in result.to_json()] == [list(shape[2:])] * shape[0]
        assert ids.shape == (shape[0], *shape[2:])
        assert ids.min() >= 0
        assert ids.max() < len(SCENE_CLASSES)
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\)"):
        loaded.predict(torch.rand(2, 1, 32, 32))
