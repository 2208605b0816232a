"""The detection task: the model overfits one scene, our COCO wiring equals pycocotools called
directly, and a trained run predicts, evaluates and draws from the API and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from antlers.cli import main
from antlers.data.object_scenes import load_object_scenes
from antlers.tasks import get_task
from antlers.tasks.detect.metrics import coco_evaluate, coco_ground_truth, coco_results
from antlers.tasks.detect.model import DetectorConfig, TwoStageDetector

if TYPE_CHECKING:
    from conftest import TrainedRun


@pytest.fixture
def one_thread() -> object:
    """Training tests use one thread: on a loaded 2-core machine two spin-waiting threads are
    several times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_overfits_one_scene(one_thread: object) -> None:
    torch.manual_seed(0)
    scene = load_object_scenes("train", n=1, image_size=64, seed=5, fashion=False)
    image, boxes, labels = scene.images.float() / 255, scene.boxes, scene.labels
    model = TwoStageDetector(
        DetectorConfig(num_classes=6, anchor_sizes=(12.0, 24.0, 40.0)), [0.5] * 3, [0.25] * 3
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):
        losses = model(image, boxes, labels)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert losses["loss"].item() < 0.3
    model.eval()
    with torch.no_grad():
        stages = model.stages(image)[0]
    found = stages.detections
    truth = coco_ground_truth(boxes, labels, (64, 64), 6)
    assert coco_evaluate(truth, coco_results([found])).ap50 > 0.99
    # every stage is there to draw: candidates >= kept proposals; each proposal classified
    assert len(stages.proposals.candidates) >= len(stages.proposals.boxes) > 0
    assert stages.classified.probabilities.shape == (len(stages.proposals.boxes), 7)
    assert (stages.classified.labels == -1).any()  # some proposals are "nothing"


def _pycocotools_directly(
    tmp_path: Path, truth: list[list[tuple[list[float], int]]], dets: list[list[tuple]]
) -> np.ndarray:
    """COCOeval on JSON files written here by explicit loops: the independent oracle."""
    images, annotations, results = [], [], []
    for i, objects in enumerate(truth):
        images.append({"id": 100 + i, "width": 64, "height": 64, "file_name": f"{i}.png"})
        for (x0, y0, x1, y1), k in objects:
            w, h = x1 - x0, y1 - y0
            annotations.append(
                {"id": len(annotations) + 1, "image_id": 100 + i, "category_id": 10 * (k + 1),
                 "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
        for (x0, y0, x1, y1), k, s in dets[i]:
            results.append(
                {"image_id": 100 + i, "category_id": 10 * (k + 1),
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s}
            )  # fmt: skip
    categories = [{"id": 10 * (k + 1), "name": f"c{k}"} for k in range(3)]
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    dt_file.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        evaluation = COCOeval(gt, gt.loadRes(str(dt_file)), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def test_metrics_equal_pycocotools_called_directly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth, dets = [], []
    for _ in range(6):
        objects = []
        for _ in range(rng.integers(1, 4)):
            x0, y0 = rng.uniform(0, 40, 2)
            objects.append(
                ([x0, y0, x0 + rng.uniform(5, 24), y0 + rng.uniform(5, 24)], int(rng.integers(3)))
            )
        truth.append(objects)
        found = []
        for box, k in objects:  # jittered true boxes, sometimes the wrong class, plus clutter
            jitter = (np.array(box) + rng.normal(0, 2, 4)).tolist()
            found.append((jitter, k if rng.uniform() < 0.8 else (k + 1) % 3, float(rng.uniform())))
        x0, y0 = rng.uniform(0, 40, 2)
        found.append(([x0, y0, x0 + 10, y0 + 10], int(rng.integers(3)), float(rng.uniform())))
        dets.append(found)
    stats = _pycocotools_directly(tmp_path, truth, dets)
    ours = coco_evaluate(
        coco_ground_truth(
            [torch.tensor([b for b, _ in o]) for o in truth],
            [torch.tensor([k for _, k in o]) for o in truth],
            (64, 64),
            3,
        ),
        coco_results(
            [
                {
                    "boxes": torch.tensor([b for b, _, _ in d]),
                    "labels": torch.tensor([k for _, k, _ in d]),
                    "scores": torch.tensor([s for _, _, s in d]),
                }
                for d in dets
            ]
        ),
    )
    assert 0.05 < stats[0] < stats[1] < 0.95  # a non-trivial case
    assert ours.ap == pytest.approx(stats[0], abs=1e-9)
    assert ours.ap50 == pytest.approx(stats[1], abs=1e-9)
    assert ours.ap75 == pytest.approx(stats[2], abs=1e-9)
    per_class = [v for v in ours.per_class if not np.isnan(v)]
    assert np.mean(per_class) == pytest.approx(stats[0], abs=1e-9)  # AP is their mean


def test_training_writes_the_run_folder(detect_run: TrainedRun) -> None:
    run = detect_run.path  # 1 epoch on a COCO copy of 20 small scenes
    for name in ("metrics.csv", "curves.png", "pr_curve.png", "report.html"):
        assert (run / name).is_file(), name
    from antlers.run import Run

    loaded = Run.load(run)
    assert loaded.classes == ["circle", "square", "triangle", "cross", "star", "ring"]
    assert loaded.model_config.category_ids == (0, 1, 2, 3, 4, 5)
    assert {"val_ap", "val_ap50", "val_ap75"} <= set(loaded.metrics[-1])


def test_run_predict_boxes_are_in_the_images_own_pixels(detect_run: TrainedRun) -> None:
    from antlers.run import Run

    run = Run.load(detect_run.path)
    run.model.roi_head.score_threshold = 0.0  # an untrained model: keep every box
    batch = torch.rand(2, 3, 64, 64)
    small = run.predict(batch)
    big = run.predict(torch.nn.functional.interpolate(batch, size=(128, 256)))
    assert len(small) == 2
    assert set(small[0]) == {"boxes", "labels", "scores"}
    d = small[0]
    assert d["boxes"].shape == (len(d["labels"]), 4)
    assert d["scores"].shape == d["labels"].shape
    assert (d["scores"][:-1] >= d["scores"][1:]).all()  # best first
    assert (big[0]["boxes"][:, 0::2] <= 256).all()
    assert (big[0]["boxes"][:, 1::2] <= 128).all()
    if len(small[0]["boxes"]) and len(big[0]["boxes"]):
        assert big[0]["boxes"][:, 0::2].max() > 64  # scaled to the 256-pixel width


def test_cli_predict_draws_and_writes_coco_results(
    detect_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = detect_run.path
    picture = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(
        picture
    )
    before = picture.read_bytes()
    assert main(["predict", str(run), str(picture), "--out", str(tmp_path / "out"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image"] == str(picture)
    assert "text" in rows[0]
    with Image.open(rows[0]["drawn"]) as drawn:
        assert drawn.format == "PNG"
        assert drawn.size[0] >= 80
    results = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert isinstance(results, list)
    for r in results:
        assert set(r) == {"image_id", "file_name", "category_id", "bbox", "score"}
        assert r["category_id"] in range(6)
    assert picture.read_bytes() == before  # the user's file is untouched
    assert main(["eval", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"ap", "ap50", "ap75"} <= set(metrics)
    assert metrics["count"] == 4


def test_task_is_registered() -> None:
    task = get_task("detect")
    assert task.primary_metric == "ap"
    assert task.maximize


def test_loader_is_deterministic_and_flips_boxes_with_their_images() -> None:
    from antlers.tasks.detect.loader import DetectionLoader

    data = load_object_scenes("train", n=12, image_size=64, fashion=False)
    one = list(DetectionLoader(data, 4, shuffle=True, seed=3, flip=True).epoch(2))
    two = list(DetectionLoader(data, 4, shuffle=True, seed=3, flip=True).epoch(2, start_batch=1))
    assert torch.equal(one[1]["image"], two[0]["image"])  # resume: the same batch again
    assert all(torch.equal(a, b) for a, b in zip(one[1]["boxes"], two[0]["boxes"], strict=True))
    flipped = 0
    for batch in one:
        for image, boxes, row in zip(batch["image"], batch["boxes"], batch["index"], strict=True):
            original = data.images[row].float() / 255
            if torch.equal(image, original):
                assert torch.equal(boxes, data.boxes[row])
            else:  # mirrored: x -> 64 - x, so x0' = 64 - x1 and x1' = 64 - x0
                flipped += 1
                assert torch.equal(image, original.flip(-1))
                expected = data.boxes[row][:, [2, 1, 0, 3]] * torch.tensor(
                    [-1, 1, -1, 1]
                ) + torch.tensor([64, 0, 64, 0])
                assert torch.allclose(boxes, expected)
    assert 0 < flipped < 12


def test_every_parameter_gets_a_gradient_and_the_loss_is_finite() -> None:
    torch.manual_seed(0)
    data = load_object_scenes("train", n=2, image_size=64, fashion=False)
    model = TwoStageDetector(DetectorConfig(num_classes=6), [0.5] * 3, [0.25] * 3).train()
    losses = get_task("detect").loss(
        model, {"image": data.images.float() / 255, "boxes": data.boxes, "labels": data.labels}
    )
    assert set(losses) == {"loss", "rpn_objectness", "rpn_box", "roi_class", "roi_box"}
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_resume_mid_epoch_equals_uninterrupted(
    detect_run: TrainedRun, tmp_path: Path, one_thread: object
) -> None:
    from antlers.config import TrainConfig
    from antlers.engine.checkpoint import load_state
    from antlers.engine.fit import fit

    coco = detect_run.data  # the shared run's COCO file; these runs are this test's own
    task = get_task("detect")
    options = {"data": str(coco), "image_size": 64, "batch_size": 4, "epochs": 2}
    config = TrainConfig(task="detect", out=str(tmp_path), **{**task.config_defaults, **options})
    quiet = lambda *_: None  # noqa: E731
    whole = fit(task, config.replace(name="whole"), log=quiet)
    cut = config.replace(name="cut", max_steps=6)
    first = fit(task, cut, log=quiet)
    assert load_state(first.run_dir / "state" / "last.pt")["loop"]["batch"] > 0  # mid-epoch
    second = fit(task, cut.replace(max_steps=None), resume=first.run_dir, log=quiet)
    a = load_state(whole.run_dir / "state" / "last.pt")["model"]
    b = load_state(second.run_dir / "state" / "last.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["val_ap"] for r in whole.history] == [r["val_ap"] for r in second.history]
