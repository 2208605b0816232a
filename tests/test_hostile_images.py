"""Hostile image files, everywhere an image enters: each is read correctly or refused with one
line naming the file and the reason. The files are made here with Pillow (and a 16-bit PNG
with alpha by hand); nothing binary is committed."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from antlers.cli import main
from antlers.data.coco import read_coco_annotations
from antlers.data.folder import load_folder
from antlers.data.mask_folder import load_mask_folder
from antlers.data.yolo import read_yolo_annotations
from antlers.io.images import ImageError, image_to_tensor, open_image
from antlers.io.photos import read_image

LIMIT = 1000  # Image.MAX_IMAGE_PIXELS in these tests: bombs stay tiny


@pytest.fixture(autouse=True)
def _small_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT)


def _png16_rgba(path: Path, rgba: np.ndarray) -> Path:
    """Write uint16 (H, W, 4) as a 16-bit RGBA PNG (Pillow writes none), chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w = rgba.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgba)
    header = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _refused(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files every entry point must refuse: name -> (path, a phrase of the reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.png"
    Image.fromarray(np.full((8, 8, 3), 90, dtype=np.uint8)).save(good)
    jpeg = folder / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), np.uint8)).save(jpeg)
    (folder / "zero.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    (folder / "text.png").write_text("moose, not pixels\n")
    (folder / "dir.png").mkdir()
    Image.new("L", (40, 40), 7).save(folder / "warned.png")  # 1600 px: 1-2x the limit
    Image.new("L", (64, 64), 7).save(folder / "bomb.png")  # 4096 px: over 2x
    return {
        "zero": (folder / "zero.png", "empty file"),
        "truncated": (folder / "cut.jpg", "Truncated File Read"),
        "not an image": (folder / "text.png", "UnidentifiedImageError"),
        "folder": (folder / "dir.png", "is a folder"),
        "bomb warning range": (folder / "warned.png", "DecompressionBombWarning"),
        "bomb": (folder / "bomb.png", "DecompressionBombError"),
    }


REFUSED = ["zero", "truncated", "not an image", "folder", "bomb warning range", "bomb"]


@pytest.mark.parametrize("kind", REFUSED)
@pytest.mark.parametrize(
    "reader",
    [open_image, image_to_tensor, read_image],
    ids=["open_image", "image_to_tensor", "photos.read_image"],
)
def test_every_hostile_file_is_refused_by_the_readers(
    tmp_path: Path, kind: str, reader: Callable[[Path], object]
) -> None:
    path, reason = _refused(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message


def test_refused_before_decoding_when_over_a_pixel_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = tmp_path / "wide.png"
    Image.new("L", (300, 200), 1).save(path)

    def never(self: object) -> None:
        raise AssertionError("decoded an image that was to be refused from its header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    with pytest.raises(ImageError, match=r"wide\.png: 300x200 = 60,000 pixels, more than the"):
        open_image(path, max_pixels=59_999)


def _oracle_cases(folder: Path) -> list[tuple[Path, int, np.ndarray]]:
    """Readable hostile files: (path, channels, the expected uint8 (H, W, C), from NumPy)."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray).save(folder / "png_named.jpg", format="PNG")
    cases.append((folder / "png_named.jpg", 1, gray[..., None]))
    cases.append((folder / "png_named.jpg", 3, np.repeat(gray[..., None], 3, axis=2)))  # for RGB
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)
    cases.append((folder / "cmyk.jpg", 3, np.broadcast_to([255, 0, 0], (4, 5, 3))))
    deep = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(folder / "deep.png")  # mode I;16
    cases.append((folder / "deep.png", 1, np.array([[0, 1, 128, 255]], np.uint8)[..., None]))
    rgba = np.zeros((2, 3, 4), dtype=np.uint16)
    rgba[0] = [65535, 0, 0, 65535]  # opaque red
    rgba[1] = [0, 0, 65535, 0]  # transparent blue: white behind it
    _png16_rgba(folder / "deep_alpha.png", rgba)
    expected = np.zeros((2, 3, 3), np.uint8)
    expected[0], expected[1] = [255, 0, 0], [255, 255, 255]
    cases.append((folder / "deep_alpha.png", 3, expected))
    palette = Image.new("P", (3, 2), 0)
    palette.putpalette([0, 200, 0, 10, 20, 30] + [0] * 762)
    palette.putpixel((2, 1), 1)
    palette.save(folder / "palette.png", transparency=1)
    expected = np.broadcast_to(np.array([0, 200, 0], np.uint8), (2, 3, 3)).copy()
    expected[1, 2] = 255
    cases.append((folder / "palette.png", 3, expected))
    Image.new("RGB", (1, 1), (9, 8, 7)).save(folder / "one.png")
    cases.append((folder / "one.png", 3, np.array([[[9, 8, 7]]], np.uint8)))
    return cases


def test_readable_hostile_files_give_the_expected_pixels(tmp_path: Path) -> None:
    for path, channels, expected in _oracle_cases(tmp_path):
        pixels = image_to_tensor(path, channels).permute(1, 2, 0) * 255
        tolerance = 2 if path.suffix == ".jpg" and "cmyk" in path.name else 0
        assert pixels.shape == expected.shape, path
        assert (pixels.round() - torch.from_numpy(expected.astype(np.float32))).abs().max() <= (
            tolerance
        ), path


def test_exif_rotation_is_honoured_in_a_class_folder(tmp_path: Path) -> None:
    stored = np.zeros((8, 16), dtype=np.uint8)
    stored[:, :8] = 255  # left half white; orientation 6 turns it to the top half
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "c").mkdir()
    Image.fromarray(stored).save(tmp_path / "c" / "turned.jpg", exif=exif, quality=100)
    data = load_folder(tmp_path, image_size=8, test_fraction=0.01)
    image = data.images[0, 0].float()
    assert image[:4].mean() > 240
    assert image[4:].mean() < 15


def test_class_folder_skips_and_counts_every_refused_file_or_refuses_when_strict(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    files = _refused(root / "moose")
    with pytest.warns(UserWarning, match=r"skipped 5 unreadable image file\(s\)"):
        data = load_folder(root, image_size=4, test_fraction=0.01)
    assert len(data) == 2  # good.png and photo.jpg; the folder named dir.png is no file
    for kind in REFUSED:
        if kind != "folder":
            path, reason = files[kind]
            assert any(s.startswith(f"{path}: ") and reason in s for s in data.skipped), kind
    with pytest.raises(ValueError, match=r"bomb\.png: cannot read image: DecompressionBombError"):
        load_folder(root, image_size=4, test_fraction=0.01, strict=True)


def test_mask_folder_skips_a_pair_with_a_hostile_image_or_mask(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("road\ncar\n")
    for split in ("train", "test"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir()
        for i in range(3):
            Image.new("RGB", (6, 5), (i, 0, 0)).save(tmp_path / split / "images" / f"s{i}.png")
            Image.new("L", (6, 5), 1).save(tmp_path / split / "masks" / f"s{i}.png")
    (tmp_path / "train" / "images" / "s1.png").write_bytes(b"")
    (tmp_path / "test" / "masks" / "s2.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    with pytest.warns(UserWarning, match=r"skipped 1 image/mask pair\(s\)") as caught:
        sets = [load_mask_folder(tmp_path, split, image_size=4) for split in ("train", "test")]
    assert len(caught) == 2  # one warning for each split's bad pair
    assert [len(s) for s in sets] == [2, 2]
    assert "s1.png: empty file" in sets[0].skipped[0]
    assert "s2.png: cannot read as an image" in sets[1].skipped[0]
    with pytest.raises(ValueError, match=r"s1\.png: empty file"):
        load_mask_folder(tmp_path, "train", strict=True)


def test_coco_and_yolo_skip_an_image_they_cannot_read(tmp_path: Path) -> None:
    files = _refused(tmp_path / "images")
    names = ["good.png", *(files[k][0].name for k in REFUSED)]
    doc = {
        "images": [{"id": i, "file_name": f"images/{n}"} for i, n in enumerate(names)],
        "annotations": [],
        "categories": [{"id": 1, "name": "moose"}],
    }
    (tmp_path / "c.json").write_text(__import__("json").dumps(doc))
    with pytest.warns(UserWarning, match="skipped 6 entries"):
        notes = read_coco_annotations(tmp_path / "c.json")
    assert [f.name for f in notes.files] == ["good.png"]
    assert any("image id 6: " in s and "DecompressionBombError" in s for s in notes.skips.lines)
    (tmp_path / "classes.txt").write_text("moose\n")
    with pytest.warns(UserWarning, match="skipped 5 entries"):  # not the folder dir.png
        yolo = read_yolo_annotations(tmp_path)
    assert sorted(f.name for f in yolo.files) == ["good.png", "photo.jpg"]
    with pytest.raises(ValueError, match=r"image bomb\.png: .*bomb\.png: cannot read as an image"):
        read_yolo_annotations(tmp_path, strict=True)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return _refused(tmp_path_factory.mktemp("hostile"))


COMMANDS = {
    "predict": lambda run, image: ["predict", str(run), str(image)],
    "explain": lambda run, image: ["explain", str(run), "--image", str(image), "--limit", "8"],
    "slide": lambda run, image: ["slide", str(run), str(image), "--out", str(image) + "_out"],
    "conv": lambda run, image: ["conv", "--image", str(image), "--out", str(image) + ".png"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", REFUSED)
def test_every_command_refuses_a_hostile_image_in_one_line(
    classify_run: object,
    hostile: dict[str, tuple[Path, str]],
    command: str,
    kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, reason = hostile[kind]
    code = main(COMMANDS[command](classify_run.path, path))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"antlers: error: {path}: ")
    assert reason in err
    assert err.count("\n") == 1


def test_slide_refuses_an_image_too_large_to_slide_over_before_decoding(
    classify_run: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from antlers.explain.report import SLIDE_PIXELS

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    side = int(SLIDE_PIXELS**0.5)
    Image.new("L", (side + 1, side), 0).save(tmp_path / "big.png")

    def never(self: object) -> None:
        raise AssertionError("decoded an image that was to be refused from its header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    assert main(["slide", str(classify_run.path), str(tmp_path / "big.png")]) == 2
    assert "more than the 4,194,304 used at full size" in capsys.readouterr().err
