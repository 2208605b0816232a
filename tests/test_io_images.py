"""One path from an image file to pixels: EXIF orientation, channels, sizes, 16-bit and
transparent images, and the NumPy reader on the same path (without torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.io.images import image_to_tensor, open_image, prepare_image, read_images
from antlers.io.photos import read_image

# Orientation tag -> the stored pixels turned upright, written with NumPy (the oracle).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),  # "rotate 90 degrees clockwise to display"
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: np.rot90(a, 1),
}


def _blocks() -> np.ndarray:
    """uint8 (16, 32): 2 x 4 blocks of 8 x 8 pixels, each its own gray, so every flip and turn
    gives a different picture."""
    levels = np.array([[0, 40, 80, 120], [250, 210, 170, 130]], dtype=np.uint8)
    return np.kron(levels, np.ones((8, 8), dtype=np.uint8))


def _jpeg(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    return path


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_is_honoured(tmp_path: Path, orientation: int) -> None:
    stored = _blocks()
    path = _jpeg(tmp_path / "photo.jpg", stored, orientation)
    expected = torch.from_numpy(UPRIGHT[orientation](stored).copy()).float() / 255
    for source in (path, str(path), read_images([str(path)])[0]):
        x = image_to_tensor(source, channels=1)
        assert x.shape == (1, *expected.shape)
        torch.testing.assert_close(x[0], expected, atol=6 / 255, rtol=0)  # JPEG at quality 100


def test_tensor_is_float_chw_in_unit_range_with_the_requested_channels() -> None:
    rgb = Image.new("RGB", (5, 3), (200, 100, 50))
    x = image_to_tensor(rgb, channels=3)
    assert x.dtype == torch.float32
    assert x.shape == (3, 3, 5)
    assert x[:, 0, 0].tolist() == pytest.approx([200 / 255, 100 / 255, 50 / 255])
    gray = image_to_tensor(rgb, channels=1)  # ITU-R 601 luma, as Pillow's "L"
    assert gray.shape == (1, 3, 5)
    luma = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert float(gray[0, 0, 0]) == pytest.approx(luma / 255)
    three = image_to_tensor(Image.new("L", (4, 2), 77), channels=3)
    assert three.shape == (3, 2, 4)
    assert torch.all(three == 77 / 255)


def _stripes() -> Image.Image:
    """40 wide x 20 tall: red left quarter, green middle half, blue right quarter."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10, 0] = pixels[:, 10:30, 1] = pixels[:, 30:, 2] = 255
    return Image.fromarray(pixels)


def test_fit_crops_the_centre_stretch_keeps_everything_shrink_keeps_the_aspect() -> None:
    fitted = image_to_tensor(_stripes(), 3, (10, 10))
    assert fitted.shape == (3, 10, 10)
    assert fitted[1].min() > 0.9  # the centre crop is the green half
    stretched = image_to_tensor(_stripes(), 3, (10, 8), resize="stretch")
    assert stretched.shape == (3, 10, 8)
    assert stretched[0, :, 0].min() > 0.9
    assert stretched[2, :, -1].min() > 0.9
    assert image_to_tensor(_stripes(), 3, (10, 10), resize="shrink").shape == (3, 5, 10)
    assert image_to_tensor(_stripes(), 3, (100, 100), resize="shrink").shape == (3, 20, 40)


def test_16_bit_png_is_scaled_to_the_unit_range(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # read back as 16 (or 32) bit integers
    x = image_to_tensor(path, channels=1)
    assert x[0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_transparency_and_palettes_are_composited_on_white() -> None:
    clear = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
    assert torch.all(image_to_tensor(clear, 3) == 1.0)
    palette = Image.new("P", (2, 1), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert image_to_tensor(palette, 3)[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    palette.info["transparency"] = 1
    assert image_to_tensor(palette, 3)[:, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nothere\.png: no such file"):
        image_to_tensor(tmp_path / "nothere.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read as an image"):
        image_to_tensor(tmp_path / "broken.png")
    with pytest.raises(ValueError, match=r"channels must be 1 \(gray\) or 3"):
        image_to_tensor(Image.new("RGB", (2, 2)), channels=4)
    with pytest.raises(ValueError, match="resize must be one of fit, stretch, shrink"):
        prepare_image(Image.new("RGB", (2, 2)), 3, (1, 1), resize="crop")  # type: ignore[arg-type]


def test_numpy_reader_takes_the_same_path(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "photo.jpg", np.tile(_blocks(), (1, 3)), orientation=6)
    array = read_image(path, max_side=40)
    assert array.dtype == np.float64
    assert array.shape == (40, 7, 3)  # stored 16 x 96, upright 96 x 16, shrunk to 40 x 6.7
    expected = image_to_tensor(path, 3, (40, 40), resize="shrink").permute(1, 2, 0).double()
    np.testing.assert_allclose(array, expected.numpy(), atol=1e-6)


def test_reading_a_photo_for_numpy_does_not_import_torch(tmp_path: Path) -> None:
    path = _jpeg(tmp_path / "photo.jpg", _blocks(), orientation=1)
    probe = (
        "import sys\nfrom antlers.io.photos import read_image\n"
        f"read_image({str(path)!r})\nprint('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_min_side_decodes_a_jpeg_smaller_but_never_below_it(tmp_path: Path) -> None:
    y, x = np.mgrid[0:300, 0:400]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    full = open_image(tmp_path / "a.jpg")
    small = open_image(tmp_path / "a.jpg", min_side=64)
    assert full.size == (400, 300)
    assert small.size == (100, 75)  # libjpeg's 1/4 scale: the smallest with both sides >= 64
    assert open_image(tmp_path / "a.jpg", min_side=150).size == (200, 150)  # 1/2: just enough
    assert open_image(tmp_path / "a.jpg", min_side=151).size == (400, 300)  # no scale fits
    assert open_image(tmp_path / "a.png", min_side=64).size == (400, 300)  # not a JPEG
    shrunk = np.asarray(full.resize((100, 75), Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(np.asarray(small, dtype=np.float64) - shrunk).mean() < 3  # the same picture
