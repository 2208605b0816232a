"""The task contract (antlers.tasks.base): every task has every member of ``Task``, its model
config survives the weights file's JSON, and a run's prediction result has ``to_json()``."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from antlers.engine.checkpoint import load_weights
from antlers.run import Run
from antlers.tasks import TASK_NAMES, get_task
from antlers.tasks.base import (
    ModelConfig,
    Task,
    images_to_batch,
)
from antlers.tasks.classify.models import ClassifyConfig
from antlers.tasks.detect.model import DetectConfig, DetectorConfig
from antlers.tasks.splits import (
    check_classes,
    validation_split,
)

if TYPE_CHECKING:
    from conftest import TrainedRun


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_has_the_contracts_members_with_its_parameters(name: str) -> None:
    task = get_task(name)
    assert task.name == name
    assert issubclass(task.config_type, ModelConfig)
    for member, protocol in vars(Task).items():
        if member.startswith("_") or not callable(protocol):
            continue
        ours = inspect.signature(getattr(task, member))
        named = inspect.signature(protocol).parameters.values()
        wanted = [p.name for p in named if p.kind != p.VAR_KEYWORD][1:]  # without self
        assert list(ours.parameters)[: len(wanted)] == wanted, (name, member)
    for member in ("primary_metric", "maximize", "default_model", "config_defaults"):
        assert hasattr(task, member), (name, member)


def test_a_nested_model_config_survives_json_and_unknown_keys_are_named() -> None:
    config = DetectConfig(
        task="detect",
        model="two_stage",
        data="scenes",
        classes=("a", "b"),
        in_channels=3,
        image_size=(64, 64),
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.2, 0.2),
        category_ids=(3, 7),
        detector=DetectorConfig(num_classes=2, widths=(8, 16, 32)),
    )
    again = DetectConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert isinstance(again.detector, DetectorConfig)
    assert again.detector.widths == (8, 16, 32)
    with pytest.raises(ValueError, match=r"unknown DetectConfig keys \['colour'\]"):
        DetectConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_weights_written_before_the_typed_config_still_load() -> None:
    # the metadata of a classifier saved as an untyped dict: lists, no optional fields
    old = {
        "task": "classify",
        "model": "alexnet_small",
        "data": "digits",
        "in_channels": 1,
        "image_size": [28, 28],
        "classes": ["0", "1", "2"],
        "mean": [0.5],
        "std": [0.25],
        "tta_flip": True,
    }
    config = ClassifyConfig.from_dict(old)
    assert config.image_size == (28, 28)
    assert config.classes == ("0", "1", "2")
    assert config.tta_flip is True
    assert config.patch_whitening is None
    assert get_task("classify").build_model(config).tta_flip is True


@pytest.mark.parametrize("fixture", ["classify_run", "segment_run", "detect_run"])
def test_a_runs_config_and_prediction_round_trip(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    run = Run.load(request.getfixturevalue(fixture).path)
    config = run.model_config
    assert type(config).from_dict(json.loads(json.dumps(config.to_dict()))) == config
    _, meta = load_weights(run.weights_path)
    assert meta["epoch"] == run.epoch
    assert run.config is not None
    assert json.loads(meta["config"]) == json.loads(run.config.to_json())
    c, (h, w) = config.in_channels, config.image_size
    result = run.predict(torch.rand(3, c, h, w))
    assert len(result) == 3
    rows = result.to_json()
    assert len(rows) == 3
    json.dumps(rows)  # JSON-able as it is


def test_generate_has_no_input_image_to_predict_on(generate_run: TrainedRun) -> None:
    run = Run.load(generate_run.path)
    with pytest.raises(ValueError, match=r"use Run\.sample"):
        run.predict(torch.rand(1, 1, 8, 8))


def test_class_check_names_the_data_and_both_lists() -> None:
    check_classes("d", ["a", "b"], ("a", "b"))
    with pytest.raises(ValueError, match=r"d: its classes \['b', 'a'\] differ .* \['a', 'b'\]"):
        check_classes("d", ["b", "a"], ("a", "b"))


def test_images_to_batch_resizes_tensors_and_states_the_expected_shape() -> None:
    batch = images_to_batch(torch.rand(2, 3, 10, 12), 3, (5, 6))
    assert batch.shape == (2, 3, 5, 6)
    with pytest.raises(ValueError, match=r"images must be \(B, 1, H, W\)"):
        images_to_batch(torch.rand(2, 3, 10, 12), 1, (5, 6))


@pytest.mark.parametrize("fixture", ["classify_run", "segment_run", "detect_run", "generate_run"])
def test_every_task_writes_one_report_page_linking_its_figures(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    run_dir = request.getfixturevalue(fixture).path
    page = (run_dir / "report.html").read_text()
    shown = re.findall(r'<img src="([\w]+\.png)"', page)
    assert "curves.png" in shown
    assert len(shown) >= 3  # curves and at least two of the task's own figures
    for name in shown:
        assert (run_dir / name).is_file(), name


def test_the_validation_split_is_seeded_disjoint_and_a_tenth_at_most_5000() -> None:
    from antlers.data import load_dataset

    digits = load_dataset("digits", "train")
    train, val = validation_split(digits, seed=3)
    assert (len(train), len(val)) == (len(digits) - 144, 144)  # round(0.1 * 1437)
    pixels = {bytes(im.numpy()) for im in digits.images}
    assert len(pixels) == len(digits)  # (each digit image is distinct: identity by pixels)
    seen_train = {bytes(im.numpy()) for im in train.images}
    seen_val = {bytes(im.numpy()) for im in val.images}
    assert not seen_train & seen_val
    assert seen_train | seen_val == pixels
    again = validation_split(digits, seed=3)[1]
    assert torch.equal(again.images, val.images)
    assert not torch.equal(validation_split(digits, seed=4)[1].images, val.images)
    indices = list(range(60_000))

    class Rows(list):
        def subset(self, chosen: list[int]) -> Rows:
            return Rows(self[i] for i in chosen)

    assert len(validation_split(Rows(indices), seed=0)[1]) == 5000  # at most VAL_MAX


class _EvalSpy:
    """The classify task, recording which of its loaders each evaluation scored."""

    def __init__(self) -> None:
        self.task, self.scored = get_task("classify"), []

    def __getattr__(self, name: str) -> object:
        return getattr(self.task, name)

    def configure(self, config: object) -> _EvalSpy:
        self.task = self.task.configure(config)
        return self

    def load_data(self, *args: object) -> object:
        self.data = self.task.load_data(*args)
        return self.data

    def evaluate(self, model: torch.nn.Module, loader: object) -> dict[str, float]:
        names = {id(self.data.val): "val", id(self.data.test): "test"}
        self.scored.append(names[id(loader)])
        return self.task.evaluate(model, loader)


def test_fit_chooses_on_validation_and_scores_the_test_split_once(tmp_path: Path) -> None:
    from antlers.config import TrainConfig
    from antlers.engine.fit import fit

    spy = _EvalSpy()
    config = TrainConfig(data="digits", model="lecture_cnn", epochs=3, batch_size=256)
    result = fit(spy, config.replace(out=str(tmp_path), image_size=16), log=lambda *_: None)
    assert spy.scored == ["val", "val", "val", "test"]
    best = max(result.history, key=lambda row: row["val_accuracy"])
    assert result.test["epoch"] == best["epoch"]
    assert result.test["val_accuracy"] == best["val_accuracy"]
    assert json.loads((result.run_dir / "metrics.json").read_text()) == result.test
    again = Run.load(result.run_dir).evaluate()  # weights/best.safetensors on the test split
    assert again["accuracy"] == pytest.approx(result.test["test_accuracy"], abs=1e-6)


def test_pixel_stats_in_chunks_and_by_rows_equal_the_whole_computation() -> None:
    from antlers.tasks.base import pixel_stats

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (50, 3, 5, 7), dtype=torch.uint8, generator=generator)
    rows = torch.randperm(50, generator=generator)[:31]
    chosen = pixels[rows].double() / 255  # the oracle: every pixel at once, in float64
    mean, std = chosen.mean(dim=(0, 2, 3)), chosen.std(dim=(0, 2, 3))
    for chunk in (1, 4, 1000):
        got_mean, got_std = pixel_stats(pixels, rows, chunk=chunk)
        torch.testing.assert_close(torch.tensor(got_mean, dtype=torch.float64), mean)
        torch.testing.assert_close(torch.tensor(got_std, dtype=torch.float64), std)
    flat = torch.full((4, 1, 3, 3), 7, dtype=torch.uint8)
    assert pixel_stats(flat) == ((7 / 255,), (1e-3,))  # std floored, mean exact


def test_shifted_views_move_by_one_pixel_into_zeros() -> None:
    from antlers.tasks.tta import shifted, tta_logits

    x = torch.arange(1, 13, dtype=torch.float32).view(1, 1, 3, 4)
    # the oracle: torch.roll, with the row or column it wrapped around zeroed
    down = torch.roll(x, 1, dims=2)
    down[..., 0, :] = 0
    left = torch.roll(x, -1, dims=3)
    left[..., :, -1] = 0
    torch.testing.assert_close(shifted(x, 1, 0), down)
    torch.testing.assert_close(shifted(x, 0, -1), left)
    torch.testing.assert_close(shifted(x, 0, 0), x)
    model = torch.nn.Conv2d(1, 2, 1)
    model.tta_flip, model.tta_shift = False, True
    with pytest.raises(ValueError, match="classification logits only"):
        tta_logits(model, x, dense=True)  # a shifted map would need shifting back
