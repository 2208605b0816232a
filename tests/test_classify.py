"""Classification task: every model trains (finite loss, every parameter gets a gradient), one
batch can be overfit, real Fashion-MNIST trains, and the CLI's train/eval/predict lines."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from PIL import Image

from antlers.cli import main
from antlers.data import load_dataset
from antlers.tasks import get_task
from antlers.tasks.classify import ClassifyTask
from antlers.tasks.classify.models import MODELS, build_classifier
from conftest import classify_config

if TYPE_CHECKING:
    from conftest import TrainedRun

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize(
    ("model", "channels", "size"),
    [(name, 1, 28) for name in MODELS if name != "alexnet"]
    + [("alexnet", 3, 227), ("resnet18", 1, 32), ("fast_resnet", 3, 32)],
)
def test_every_parameter_gets_a_gradient(model: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    net = build_classifier(classify_config(model, channels, size))
    batch = {"image": torch.rand(2, channels, size, size), "label": torch.tensor([0, 3])}
    out = get_task("classify").loss(net.train(), batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    assert frozen == (["1.0.weight"] if model == "fast_resnet" else [])  # patch whitening
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
            assert p.grad.abs().sum() > 0, name


def test_overfit_one_batch() -> None:
    torch.manual_seed(0)
    data = load_dataset("shapes", "train", image_size=32)
    batch = {"image": data.images[:32].float() / 255, "label": data.labels[:32]}
    net = build_classifier(classify_config("fast_resnet", 3, 32, classes=len(data.classes)))
    task = ClassifyTask(label_smoothing=0.0)  # a smoothed loss cannot reach 0
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(60):
        loss = task.loss(net.train(), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert torch.equal(task.probabilities(net, batch["image"]).argmax(1), batch["label"])


def test_fashion_mnist_from_debian_trains(tmp_path: Path) -> None:
    # .ci/run installs Debian's dataset-fashion-mnist; without it this test fails, never skips.
    assert (FASHION / "train-images-idx3-ubyte.gz").is_file(), (
        "apt-get install dataset-fashion-mnist"
    )
    train = load_dataset("fashion-mnist", "train", download=False)
    assert tuple(train.images.shape) == (60000, 1, 28, 28)
    assert train.classes[0] == "T-shirt/top"
    code = main(
        [
            "train",
            "classify",
            "--data",
            "fashion-mnist",
            "--epochs",
            "1",
            "--max-steps",
            "60",
            "--batch-size",
            "128",
            "--out",
            str(tmp_path),
            "--name",
            "f",
        ]
    )
    assert code == 0
    run = tmp_path / "classify" / "f"
    assert (run / "state" / "last.pt").is_file()


def test_cli_train_eval_predict(
    classify_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = classify_run.printed  # `antlers train classify --data digits --epochs 2 ...`
    assert re.fullmatch(
        r"test, epoch [12] \(chosen on validation\): accuracy 0\.\d{4}, loss [\d.]+, "
        r"top5 [\d.]+",
        lines[-3],
    ), lines[-3]
    assert re.fullmatch(
        r"done \(epochs\): epoch 2, val_accuracy 0\.\d{4}, val_loss [\d.]+, "
        r"val_top5 [\d.]+",
        lines[-2],
    ), lines[-2]
    run = classify_run.path
    assert lines[-1] == f"results in {run}"
    test_accuracy = float(lines[-3].split("accuracy ")[1].split(",")[0])
    assert test_accuracy > 0.8
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(test_accuracy, abs=1e-4)
    assert summary["test_count"] == 359  # the whole test split, scored once at the end

    assert main(["eval", str(run), "--json"]) == 0  # the test split by default
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["data"], metrics["split"], metrics["count"]) == ("digits", "test", 359)
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
    # the validation split is rebuilt from the run's seed: the same images as in training
    assert main(["eval", str(run), "--split", "val", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert (metrics["split"], metrics["count"]) == ("val", 144)  # 10% of digits' 1,437
    assert metrics["accuracy"] == pytest.approx(summary["val_accuracy"], abs=1e-6)

    image = tmp_path / "seven.png"
    Image.fromarray(load_dataset("digits", "test").images[0, 0].numpy()).save(image)
    assert main(["predict", str(run), str(image), "--top", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"{re.escape(str(image))}: \d [01]\.\d{{3}}, \d [01]\.\d{{3}}", line)


def test_predict_reads_files_in_chunks_with_the_same_answers(
    classify_run: TrainedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five files in chunks of two (memory bounded by the chunk) answer as one batch of five."""
    from antlers import Run
    from antlers.tasks.classify import task as classify_task

    digits = load_dataset("digits", "test").images
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(digits[i, 0].numpy()).save(paths[-1])
    run = Run.load(classify_run.path)
    whole = run.task.predict_files(run.model, run.model_config, paths, top=3)
    monkeypatch.setattr(classify_task, "PREDICT_CHUNK", 2)
    chunked = run.task.predict_files(run.model, run.model_config, paths, top=3)
    assert [r["image"] for r in chunked] == paths
    for a, b in zip(chunked, whole, strict=True):  # batch sizes may round differently
        assert [x["label"] for x in a["top"]] == [x["label"] for x in b["top"]]
        got, expected = ([x["probability"] for x in r["top"]] for r in (a, b))
        assert got == pytest.approx(expected, abs=1e-6)


def test_predict_with_a_missing_run_is_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", "/nonexistent/run", "x.png"])
    assert code == 2
    assert capsys.readouterr().err.startswith("antlers: error: /nonexistent/run: no weights")


def test_flip_test_time_averaging_follows_the_training_flips() -> None:
    torch.manual_seed(0)
    task = get_task("classify")
    with_flips = build_classifier(classify_config("fast_resnet", 1, 28, tta_flip=True)).eval()
    without = build_classifier(classify_config("fast_resnet", 1, 28, tta_flip=False)).eval()
    without.load_state_dict(with_flips.state_dict())
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        plain, mirrored = without(x), without(x.flip(-1))
        torch.testing.assert_close(task.logits(without, x), plain)
        torch.testing.assert_close(task.logits(with_flips, x), (plain + mirrored) / 2)
    assert not torch.allclose(plain, mirrored)  # the averaging changes something


def moved(x: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """The oracle of a shifted view: ``x`` copied ``rows`` down and ``columns`` right into zeros."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(rows, 0) : h + min(rows, 0), max(columns, 0) : w + min(columns, 0)] = x[
        ..., max(-rows, 0) : h + min(-rows, 0), max(-columns, 0) : w + min(-columns, 0)
    ]
    return out


def test_shift_test_time_averaging_follows_the_training_crops() -> None:
    torch.manual_seed(0)
    task = get_task("classify")
    config = classify_config("fast_resnet", 1, 28, tta_flip=True)
    shifting = build_classifier(dataclasses.replace(config, tta_shift=True)).eval()
    flips_only = build_classifier(config).eval()
    flips_only.load_state_dict(shifting.state_dict())
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        unshifted = (flips_only(x) + flips_only(x.flip(-1))) / 2
        views = [flips_only(moved(x, r, c)) for r, c in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        expected = unshifted / 2 + sum(views) / 8  # the unshifted views weigh 1/2, each shift 1/8
        torch.testing.assert_close(task.logits(shifting, x), expected)
        torch.testing.assert_close(task.logits(flips_only, x), unshifted)
    assert not torch.allclose(expected, unshifted, atol=1e-4)  # the shifts change something


def test_random_crops_turn_on_the_shifted_test_time_views() -> None:
    from antlers.tasks import default_config

    task = get_task("classify")
    plain = task.load_data(default_config("classify", data="digits"))
    assert (plain.model_config.tta_shift, plain.train.crop_padding) == (False, 0)  # the default
    cropped = task.load_data(default_config("classify", data="digits", crop=1))
    assert (cropped.model_config.tta_shift, cropped.train.crop_padding) == (True, 1)
    assert task.build_model(cropped.model_config).tta_shift is True


def test_a_loaded_run_keeps_the_memory_format_it_trained_in(
    classify_run: TrainedRun, tmp_path: Path
) -> None:
    from antlers.run import Run
    from conftest import train_cli

    def convs_channels_last(run: Run) -> set[bool]:
        convs = [m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d)]
        weights = [c.weight for c in convs if c.in_channels > 1]  # (O, 1, k, k) is both formats
        assert weights
        return {w.is_contiguous(memory_format=torch.channels_last) for w in weights}

    assert convs_channels_last(Run.load(classify_run.path)) == {True}  # the default, as trained
    options = ["--data", "digits", "--model", "lecture_cnn", "--image-size", "16"]
    options += ["--epochs", "1", "--no-channels-last"]
    nchw = train_cli("classify", options, tmp_path)
    assert convs_channels_last(Run.load(nchw.path)) == {False}


def test_digits_are_never_flipped() -> None:
    from antlers.config import TrainConfig

    data = get_task("classify").load_data(TrainConfig(data="digits"))
    assert data.model_config.tta_flip is False
    assert data.train.flip is False
