"""The task contract (antlers.tasks.base): every task has every member of ``Task``, its model
config survives the weights file's JSON, and a run's prediction result has ``to_json()``."""

from __future__ import annotations

import inspect
import json
import re
from typing import TYPE_CHECKING

import pytest
import torch

from antlers.engine.checkpoint import load_weights
from antlers.run import Run
from antlers.tasks import TASK_NAMES, get_task
from antlers.tasks.base import ModelConfig, Task, check_classes, images_to_batch
from antlers.tasks.classify.models import ClassifyConfig
from antlers.tasks.detect.model import DetectConfig, DetectorConfig

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
