"""The tour: the quick run writes index.html with chapters 1-3, their figures and numbers."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.error import URLError

import pytest
from PIL import Image

from antlers.cli import main
from antlers.run import Run
from antlers.tour import CHAPTERS, run_tour


@pytest.fixture(scope="module")
def quick_tour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("tour")
    lines: list[str] = []
    result = run_tour(out, quick=True, log=lines.append)
    assert result.index == out / "index.html"
    return out, "\n".join(lines)


def test_index_has_chapters_one_to_four(quick_tour: tuple[Path, str]) -> None:
    out, _ = quick_tour
    page = (out / "index.html").read_text()
    for number in (1, 2, 3, 4):
        assert f'<section id="ch{number}">' in page
    assert "Convolution" in page
    assert "4x(1760+1) = 7,044" in page  # the lecture CNN's FC layer, formula filled in
    assert "12x(30+1) = 372 parameters" in page  # conv vs fully connected
    assert re.search(r"held-out accuracy 9\d\.\d%", page), "NumPy CNN accuracy missing"


def test_every_linked_figure_exists_and_is_a_png(quick_tour: tuple[Path, str]) -> None:
    out, _ = quick_tour
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 5
    for src in sources:
        with Image.open(out / src) as image:
            assert image.format == "PNG"
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_progress_is_shown(quick_tour: tuple[Path, str]) -> None:
    _, log = quick_tour
    n = len(CHAPTERS)
    assert f"[1/{n}] chapter 1 ..." in log
    assert f"[3/{n}] Backprop learns the features:" in log
    assert f"[4/{n}] A CNN learns to classify:" in log
    assert "epoch 1/4" in log


def test_classification_chapter_trains_and_reports(quick_tour: tuple[Path, str]) -> None:
    out, _ = quick_tour
    page = (out / "index.html").read_text()
    # .ci/run installs Debian's dataset-fashion-mnist: then chapter 4 trains on it (its fallback,
    # shapes, has a test of its own below); without it this test fails, never skips.
    assert "fashion-mnist for 8 s of CPU time" in page, "apt-get install dataset-fashion-mnist"
    assert (out / "classify" / "ch4_run" / "weights" / "best.safetensors").is_file()
    assert '<img src="classify/ch4_run/confusion.png"' in page
    accuracies = [float(a) for a in re.findall(r"<td>(\d+\.\d+)%</td>", page)]
    assert accuracies, "no validation accuracy in the chapter's table"
    assert max(accuracies) > 50.0  # far above chance (10% or 17%) after 8 s
    found = re.search(r"epoch (\d+), is scored once on the test split: (\d+\.\d+)%", page)
    assert found, "chapter 4 does not give the test accuracy of the epoch chosen on validation"
    assert float(found.group(2)) > 50.0


def test_stride_one_conv_is_equivariant_in_the_page(quick_tour: tuple[Path, str]) -> None:
    out, _ = quick_tour
    page = (out / "index.html").read_text()
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", page)
    verdicts = {layer: verdict for layer, _, verdict in rows if verdict.endswith("equivariant")}
    assert verdicts["conv 3x3, stride 1, + ReLU"] == "equivariant"
    assert verdicts["conv 3x3, stride 2"] == "not equivariant"
    assert verdicts["max pool 2x2"] == "not equivariant"


def test_cli_single_chapter(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["tour", "--quick", "--chapter", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"open {tmp_path / 'index.html'}"
    assert any(
        line.startswith("  1. Convolution: edge detector output row [0, -3, 6, -3]") for line in out
    )
    page = (tmp_path / "index.html").read_text()
    assert '<section id="ch1">' in page
    assert '<section id="ch2">' not in page


def test_unknown_chapter_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(f"chapters are {sorted(CHAPTERS)}")):
        run_tour(tmp_path, chapters=[42])


def test_what_cnns_learn_chapter(quick_tour: tuple[Path, str]) -> None:
    out, log = quick_tour
    page = (out / "index.html").read_text()
    assert '<section id="ch5">' in page
    assert "no chapter 4 run" not in log  # it looked into chapter 4's classifier
    for name in ("kernels", "feature_maps", "gradcam", "heatmaps"):
        assert f'<img src="explain/{name}.png"' in page, name
    # fast_resnet's first layer is computed (patch whitening): no evolution to show, and it says so
    assert "kernel_evolution" not in page
    assert "does not learn its first layer" in page
    assert len(re.findall(r'<img src="explain/topk_[^"]+\.png"', page)) == 2  # early, deep
    found = re.search(r"moose detector found (\d) of (\d) objects", log)
    assert found, "chapter 5 summary missing"
    assert int(found.group(2)) == 4  # four objects of different classes in the scene


def test_segmentation_chapter_labels_pixels(quick_tour: tuple[Path, str]) -> None:
    out, log = quick_tour
    page = (out / "index.html").read_text()
    assert '<section id="ch6">' in page
    assert '<img src="segment/ch6_run/overlays.png"' in page
    assert '<img src="segment/ch6_run/iou.png"' in page
    found = re.search(r"\] Segmentation: U-Net test mIoU (0\.\d{3}) after \d+ s", log)
    assert found, "chapter 6 summary missing"
    assert float(found.group(1)) > 0.1  # above a constant guess (about 0.04) after 5 s
    ious = re.findall(r"<tr><td>(road|building|vehicle)</td><td>(0\.\d{3}|1\.000)</td></tr>", page)
    assert len(ious) == 3, "per-class IoU table missing"


def test_diffusion_chapter_noises_trains_and_samples(quick_tour: tuple[Path, str]) -> None:
    out, log = quick_tour
    page = (out / "index.html").read_text()
    assert '<section id="ch8">' in page
    assert "A SHORT RUN: 5 s of CPU training" in page
    for src in ("ch8_noising.png", "ch8_schedule.png", "generate/ch8_run/samples.png"):
        assert f'<img src="{src}"' in page
    with Image.open(out / "ch8_noising.png") as strip:  # 2 schedules x 8 timesteps
        assert strip.width > 3 * strip.height
    assert re.search(r"Diffusion: digits 8x8, \d+ steps in 5 s, val noise loss 0\.\d+", log)
    assert "HOW TO INPUT A CAPTION, in code: antlers train generate --data captions" in page
    assert '<img src="ch8_captions.png"' in page  # a recorded caption run's samples
    with Image.open(out / "ch8_captions.png") as samples:
        assert samples.format == "PNG"


def test_detection_chapter_draws_every_stage(quick_tour: tuple[Path, str]) -> None:
    out, log = quick_tour
    page = (out / "index.html").read_text()
    assert '<section id="ch7">' in page
    assert '<img src="detect/stages.png"' in page
    assert '<img src="detect/detections.png"' in page
    assert re.search(r"\d+ scored candidates, \d+ proposals kept", page)
    assert re.search(r"<td>48</td><td>\d\.\d{3}</td>", page), "no AP table for held-out scenes"
    assert "Object detection: propose, classify, suppress: AP50" in log


def _without_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Debian folder, no $ANTLERS_DATA, an empty cache, no network."""
    from antlers.data import DatasetNotFoundError, fetch, load_dataset, mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("network is unreachable (test)")

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANTLERS_DATA", raising=False)
    no_system = dataclasses.replace(mnist.FASHION_MNIST, system_folders=())
    monkeypatch.setattr(mnist, "FASHION_MNIST", no_system)
    monkeypatch.setattr(fetch, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError):  # the premise: it is absent now
        load_dataset("fashion-mnist", "test", download=False)


def _short_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every run the tour trains lasts 2 s; returns the list its data names are appended to."""
    import antlers.run

    trained: list[str] = []
    train = antlers.run.train

    def short_train(task: str, **options: object) -> antlers.run.Run:
        trained.append(str(options["data"]))
        return train(task, **{**options, "time": 2.0})

    monkeypatch.setattr(antlers.run, "train", short_train)
    return trained


def test_full_diffusion_chapter_draws_fashion_mnist_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full tour's chapter 8 trains on 28x28 Fashion-MNIST (installed by `make
    system-deps`), the quick tour on the 8x8 digits. Training is cut to 2 s: the choice of data
    and what the page says of it are under test, not what the model learns."""
    trained = _short_training(monkeypatch)
    lines: list[str] = []
    run_tour(tmp_path / "tour", quick=False, chapters=[8], log=lines.append)
    log, page = "\n".join(lines), (tmp_path / "tour" / "index.html").read_text()
    assert trained == ["fashion-mnist"]
    assert re.search(r"\] Diffusion: Fashion-MNIST 28x28, \d+ steps in 45 s", log)
    assert "One row per class (T-shirt/top, Trouser, Pullover, Dress" in page
    run = Run.load(tmp_path / "tour" / "generate" / "ch8_run")
    assert tuple(run.model_config.image_size) == (28, 28)
    assert (run.model_config.model, run.config.batch_size) == ("unet_small", 64)


def test_without_fashion_mnist_chapters_four_and_five_use_shapes_and_eight_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fashion-MNIST absent (no Debian folder, no $ANTLERS_DATA, an empty cache, no network):
    chapter 4 trains on the built-in shapes and says so, chapter 5 looks into that run, and the
    full chapter 8 trains on the digits. Training is cut to 2 s: the chapters' choice of data is
    under test, not what they learn."""
    _without_fashion_mnist(tmp_path, monkeypatch)
    trained = _short_training(monkeypatch)
    run_tour(tmp_path / "tour8", quick=False, chapters=[8], log=lambda line: None)
    assert trained == ["digits"]
    trained.clear()
    lines: list[str] = []
    run_tour(tmp_path / "tour", quick=True, chapters=[4, 5], log=lines.append)
    log, page = "\n".join(lines), (tmp_path / "tour" / "index.html").read_text()
    assert trained == ["shapes"]  # chapter 5 looked into chapter 4's run: it trained nothing
    assert "training fast_resnet on shapes for 8 s" in log
    assert "shapes for 8 s of CPU time" in page
    assert "fashion-mnist" not in page
    assert re.search(r"\] A CNN learns to classify: shapes: test accuracy \d", log)
    assert re.search(r"\] What CNNs learn: shapes: kernels", log)
