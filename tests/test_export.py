"""``antlers export``: each task's ONNX file equals its PyTorch model on an input it was not traced
with; the file round-trips through ``antlers predict`` / ``antlers sample``; refusals are one line.

The oracle is the run's own PyTorch inference (``task.logits``, ``task.detections``, the denoiser,
``Run.predict``), run beside a bare ``onnxruntime.InferenceSession`` of the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from antlers.cli import main
from antlers.export import ExportError, OnnxRun, export_onnx
from antlers.export.exporter import convert_opset
from antlers.run import Run

RTOL, ATOL = 1e-3, 1e-5


@pytest.fixture(scope="module")
def exported(
    classify_run: Any,
    segment_run: Any,
    detect_run: Any,
    generate_run: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], tuple[Run, Path]]:
    """task -> (its session run loaded, its file exported with dynamic axes), each once."""
    runs = {"classify": classify_run, "segment": segment_run, "detect": detect_run}
    runs["generate"] = generate_run
    folder = tmp_path_factory.mktemp("onnx")
    done: dict[str, tuple[Run, Path]] = {}

    def get(task: str) -> tuple[Run, Path]:
        if task not in done:
            run = Run.load(runs[task].path)
            if task == "detect":
                spread_scores(run.model)
            written = export_onnx(run, folder / f"{task}.onnx")
            assert written.parity.ok, written.parity  # the exporter's own check agrees too
            done[task] = (run, written.path)
        return done[task]

    return get


@torch.no_grad()
def spread_scores(detector: torch.nn.Module) -> None:
    """A seeded new RoI head: the 1-epoch detector scores every box about alike (gaps of one
    float32 ulp), and which of two equal scores NMS or the top-50 cut keeps is each
    implementation's own choice; with scores apart, the detections are well defined."""
    torch.manual_seed(0)
    for layer in detector.roi_head.modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            layer.reset_parameters()
    torch.nn.init.normal_(detector.roi_head.classifier.weight, std=0.5)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:  # antlers export: parity failed (1)
            code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()


def run_graph(path: Path, **inputs: torch.Tensor) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


def by_label_and_box(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows (label, x0, y0, x1, y1, score) sorted by label, then box: an order both sides share
    (the order of near-equal scores is each NMS implementation's own)."""
    rows = np.column_stack([labels.astype(np.float64), boxes, scores])
    return rows[np.lexsort(rows[:, 4::-1].T)]


def scene_images(data: str, n: int) -> torch.Tensor:
    from antlers.data.detection import load_detection

    return load_detection(data, "train", image_size=64).images[:n].float() / 255


@torch.no_grad()
def test_every_task_equals_pytorch_on_another_input(exported: Callable, detect_run: Any) -> None:
    g = torch.Generator().manual_seed(7)
    # classify: traced with a batch of 2, checked on 5
    run, path = exported("classify")
    x = torch.rand(5, 1, 16, 16, generator=g)
    (logits,) = run_graph(path, images=x)
    np.testing.assert_allclose(logits, run.task.logits(run.model, x).numpy(), RTOL, ATOL)
    # segment: traced at 2x3x32x32, checked at 3x3x27x41 (not a multiple of the U-Net's 4)
    run, path = exported("segment")
    x = torch.rand(3, 3, 27, 41, generator=g)
    (logits,) = run_graph(path, images=x)
    assert logits.shape == (3, len(run.classes), 27, 41)
    np.testing.assert_allclose(logits, run.task.logits(run.model, x).numpy(), RTOL, ATOL)
    # generate: traced with a batch of 2, checked on 5, with the null class (-1) among the labels
    run, path = exported("generate")
    x = torch.randn(5, 1, 8, 8, generator=g)
    t, labels = torch.tensor([0, 3, 500, 998, 999]), torch.tensor([-1, 0, 9, 4, -1])
    (noise,) = run_graph(path, images=x, timesteps=t, labels=labels)
    np.testing.assert_allclose(noise, run.model(x, t, labels).numpy(), RTOL, ATOL)
    # detect: traced on noise, checked on real scenes (one image per call)
    run, path = exported("detect")
    for image in scene_images(detect_run.data, 2):
        ours = by_label_and_box(*run_graph(path, images=image[None]))
        found = run.task.detections(run.model, image[None])[0]
        theirs = by_label_and_box(*(found[k].numpy() for k in ("boxes", "scores", "labels")))
        assert len(theirs) > 0
        np.testing.assert_allclose(ours, theirs, RTOL, ATOL)


@torch.no_grad()
def test_a_classifier_averaged_over_shifted_views_exports_them(
    classify_run: Any, tmp_path: Path
) -> None:
    run = Run.load(classify_run.path)  # digits: trained without crops
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    unshifted = run.task.logits(run.model, x)
    run.model.tta_shift = True  # as a run trained with --crop 1 is built
    shifting = run.task.logits(run.model, x)
    assert not torch.allclose(shifting, unshifted, atol=1e-3)
    written = export_onnx(run, tmp_path / "shifting.onnx")
    assert written.parity.ok, written.parity
    (logits,) = run_graph(written.path, images=x)
    np.testing.assert_allclose(logits, shifting.numpy(), RTOL, ATOL)


def test_a_static_export_fixes_its_input_shape_and_still_equals_pytorch(
    classify_run: Any, tmp_path: Path
) -> None:
    """--no-dynamic: every input axis is a number in the file, and the graph equals PyTorch."""
    run = Run.load(classify_run.path)
    written = export_onnx(run, tmp_path / "static.onnx", dynamic=False)
    assert written.parity.ok, written.parity
    axes = onnx.load(str(written.path)).graph.input[0].type.tensor_type.shape.dim
    assert all(axis.HasField("dim_value") for axis in axes), axes
    shape = tuple(axis.dim_value for axis in axes)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
    (logits,) = run_graph(written.path, images=x)
    with torch.no_grad():
        expected = run.task.logits(run.model, x).numpy()
    np.testing.assert_allclose(logits, expected, RTOL, ATOL)


def test_onnx_run_predicts_as_the_run(exported: Callable, detect_run: Any) -> None:
    g = torch.Generator().manual_seed(8)
    run, path = exported("classify")
    x = torch.rand(4, 1, 20, 12, generator=g)  # resized to the model's 16x16 by both
    ours, theirs = OnnxRun(path).predict(x), run.predict(x)
    torch.testing.assert_close(ours.probabilities, theirs.probabilities, rtol=RTOL, atol=ATOL)
    run, path = exported("segment")
    x = torch.rand(2, 3, 40, 48, generator=g)
    assert torch.equal(OnnxRun(path).predict(x).masks, run.predict(x).masks)
    run, path = exported("detect")
    x = scene_images(detect_run.data, 3)
    ours, theirs = OnnxRun(path).predict(x), run.predict(x)
    for i in range(3):
        a = by_label_and_box(ours.boxes[i].numpy(), ours.scores[i].numpy(), ours.labels[i].numpy())
        b = by_label_and_box(
            theirs.boxes[i].numpy(), theirs.scores[i].numpy(), theirs.labels[i].numpy()
        )
        np.testing.assert_allclose(a, b, RTOL, ATOL)


def test_metadata_props(exported: Callable) -> None:
    run, path = exported("classify")
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["task"] == "classify"
    assert json.loads(props["classes"]) == run.classes
    assert json.loads(props["input_size"]) == [1, 16, 16]
    assert props["antlers_version"] == version("antlers")
    assert run.task.config_type.from_dict(json.loads(props["model_config"])) == run.model_config


def test_cli_export_then_predict_prints_what_the_run_prints(
    classify_run: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "run"  # the session's run folder stays as it is
    shutil.copytree(classify_run.path, copy)
    code, printed, _ = cli("export", str(copy))
    assert code == 0
    model = copy / "weights" / "model.onnx"
    assert printed.splitlines()[0].startswith(f"wrote {model} (")
    assert "equal at rtol 0.001" in printed
    from PIL import Image

    pictures = []
    for i, value in enumerate((40, 200)):
        picture = tmp_path / f"p{i}.png"
        Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(picture)
        pictures.append(str(picture))
    _, ours, _ = cli("predict", str(model), *pictures, "--json")
    _, theirs, _ = cli("predict", str(copy), *pictures, "--json")
    for a, b in zip(json.loads(ours), json.loads(theirs), strict=True):
        assert a["label"] == b["label"]
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        for p, q in zip(a["top"], b["top"], strict=True):
            assert p["probability"] == pytest.approx(q["probability"], abs=1e-4)


def test_cli_sample_from_the_exported_denoiser(exported: Callable, tmp_path: Path) -> None:
    from PIL import Image

    run, path = exported("generate")
    options = ["--n", "4", "--steps", "4", "--seed", "3", "--class", "7"]
    assert cli("sample", str(path), *options, "--out", str(tmp_path / "onnx"))[0] == 0
    assert cli("sample", str(run.weights_path), *options, "--out", str(tmp_path / "torch"))[0] == 0
    ours = np.asarray(Image.open(tmp_path / "onnx" / "grid.png"), dtype=int)
    theirs = np.asarray(Image.open(tmp_path / "torch" / "grid.png"), dtype=int)
    assert np.abs(ours - theirs).max() <= 1  # 8-bit pixels: at most a rounding apart
    torch.testing.assert_close(
        OnnxRun(path).sample(3, steps=4, seed=5),
        run.sample(3, steps=4, seed=5),
        rtol=RTOL,
        atol=ATOL,
    )


def test_an_opset_without_the_operator_is_one_line(
    exported: Callable, detect_run: Any, tmp_path: Path
) -> None:
    code, printed, error = cli(
        "export", str(detect_run.path), "--opset", "10", "--out", str(tmp_path / "d.onnx")
    )
    assert (code, printed) == (2, "")
    assert len(error.splitlines()) == 1
    assert "torchvision::nms" in error
    assert "opset 10" in error
    _, path = exported("classify")  # the dynamo exporter's opset 18, converted down
    with pytest.raises(ExportError, match=r"operator \w+ .* no conversion to opset 7"):
        convert_opset(onnx.load(path), 7)


def test_without_the_extra_the_command_says_how_to_install(
    classify_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    code, printed, error = cli("export", str(classify_run.path))
    assert (code, printed) == (2, "")
    assert len(error.splitlines()) == 1
    assert "pip install 'antlers[export]'" in error
