"""Pictures out: PNG round trips of tensors and PIL images (palettes kept), figures, and the
report page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.viz.figures import curve_figure, save_figure
from antlers.viz.html import write_report_html
from antlers.viz.images import save_png, to_pil, to_uint8


def _read(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.copy()


def test_uint8_tensor_round_trips_exactly(tmp_path: Path) -> None:
    image = torch.randint(0, 256, (3, 7, 5), dtype=torch.uint8, generator=torch.Generator())
    path = save_png(image, tmp_path / "sub" / "rgb.png")
    assert path == tmp_path / "sub" / "rgb.png"
    back = _read(path)
    assert back.mode == "RGB"
    assert torch.equal(torch.from_numpy(np.array(back)).permute(2, 0, 1), image)
    assert [p.name for p in path.parent.iterdir()] == ["rgb.png"]  # no temporary file left


def test_float_tensor_is_rounded_clamped_and_gray_stays_gray(tmp_path: Path) -> None:
    values = torch.tensor([[[-0.5, 0.0, 0.5, 1.0, 2.0, 0.2]]])  # (1, 1, 6)
    assert to_uint8(values).flatten().tolist() == [0, 0, 128, 255, 255, 51]
    back = _read(save_png(values, tmp_path / "gray.png"))
    assert back.mode == "L"
    assert np.asarray(back).tolist() == [[0, 0, 128, 255, 255, 51]]
    assert to_pil(torch.zeros(4, 2, 3)).mode == "RGBA"


def test_palette_image_keeps_its_ids_and_colours(tmp_path: Path) -> None:
    ids = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    mask = Image.fromarray(ids).convert("P")
    colours = [10, 20, 30, 200, 0, 0, 0, 200, 0]
    mask.putpalette(colours + [0] * (768 - len(colours)))
    back = _read(save_png(mask, tmp_path / "mask.png"))
    assert back.mode == "P"
    assert np.array_equal(np.asarray(back), ids)
    assert back.getpalette()[:9] == colours


def test_bad_shape_is_refused_and_the_old_file_kept(tmp_path: Path) -> None:
    path = save_png(torch.zeros(1, 2, 2), tmp_path / "kept.png")
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"\(C, H, W\) with C 1, 3 or 4, got \(2, 2, 2\)"):
        save_png(torch.zeros(2, 2, 2), path)
    assert path.read_bytes() == before


def test_figure_is_written_as_png_of_its_size(tmp_path: Path) -> None:
    fig = curve_figure({"loss": [3.0, 2.0, 1.5]}, "step", "loss")
    path = save_figure(fig, tmp_path / "curve.png", dpi=50)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert _read(path).size == (300, 175)  # 6 x 3.5 inches at 50 dpi


def test_report_page_escapes_names_and_shows_only_written_figures(tmp_path: Path) -> None:
    save_png(torch.zeros(3, 2, 2), tmp_path / "confusion.png")
    path = write_report_html(
        tmp_path, "test accuracy 90.00%", "accuracy", {"<cat>": "90.0%"}, ("confusion", "curves")
    )
    page = path.read_text()
    assert "test accuracy 90.00%" in page
    assert "<td>&lt;cat&gt;</td><td>90.0%</td>" in page
    assert 'src="confusion.png"' in page
    assert "curves.png" not in page
