"""The tour: the quick run writes index.html with chapters 1-3, their figures and numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from antlers.cli import main
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
    found = re.search(r"(fashion-mnist|shapes) for 25 s of CPU time", page)
    assert found, "chapter 4 does not say what it trained on"
    assert (out / "classify" / "ch4_run" / "weights" / "best.safetensors").is_file()
    assert '<img src="classify/ch4_run/confusion.png"' in page
    accuracies = [float(a) for a in re.findall(r"<td>(\d+\.\d+)%</td>", page)]
    assert accuracies, "no test accuracy in the chapter's table"
    assert max(accuracies) > 50.0  # far above chance (10% or 17%) after 25 s


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
    found = re.search(r"\] Segmentation: U-Net mIoU (0\.\d{3}) on held-out scenes", log)
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


def test_detection_chapter_draws_every_stage(quick_tour: tuple[Path, str]) -> None:
    out, log = quick_tour
    page = (out / "index.html").read_text()
    assert '<section id="ch7">' in page
    assert '<img src="detect/stages.png"' in page
    assert '<img src="detect/detections.png"' in page
    assert re.search(r"\d+ scored candidates, \d+ proposals kept", page)
    assert re.search(r"<td>48</td><td>\d\.\d{3}</td>", page), "no AP table for held-out scenes"
    assert "Object detection: propose, classify, suppress: AP50" in log
