"""Class-per-folder datasets: modes, EXIF, corrupt files, bombs, splits, read-only access."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from antlers.data import load_dataset, load_folder


def save_gray(path: Path, value: int, size: tuple[int, int] = (12, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def snapshot(root: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file under root with its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Two classes, one image in each of many modes and formats, plus files to ignore."""
    root = tmp_path / "mixed"
    a, b = root / "apple", root / "banana"
    a.mkdir(parents=True)
    b.mkdir()
    Image.new("L", (10, 10), 100).save(a / "gray.png")
    Image.new("RGB", (10, 10), (255, 0, 0)).save(a / "red.jpg", quality=95)
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    transparent.save(a / "clear.png")
    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    palette.save(b / "palette_transparent.png", transparency=1)
    palette.save(b / "palette.gif")
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(b / "cmyk.tif")
    Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16)).save(b / "sixteen.png")
    (b / "notes.txt").write_text("not an image")
    Image.new("RGB", (10, 10)).save(b / ".hidden.png")
    (root / ".ipynb_checkpoints").mkdir()
    return root


def test_mixed_modes_to_rgb(mixed: Path) -> None:
    before = snapshot(mixed)
    data = load_folder(mixed, "train", image_size=8, test_fraction=0.01)
    assert data.classes == ("apple", "banana")
    assert data.images.shape == (7, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    pixel = {i: data.images[i, :, 4, 4].tolist() for i in range(7)}
    # sorted: clear.png, gray.png, red.jpg | cmyk.tif, palette.gif, palette_transparent.png, sixteen
    assert pixel[0] == [255, 255, 255]  # transparent RGBA composited on white
    assert pixel[1] == [100, 100, 100]
    assert pixel[2][0] > 240  # JPEG red, lossy
    assert pixel[2][1] < 15
    assert pixel[3] == [255, 0, 0]  # CMYK (0, 255, 255, 0) is red
    assert pixel[4] == [10, 200, 30]
    assert pixel[5] == [255, 255, 255]  # the palette's transparent index
    assert pixel[6] == [255, 255, 255]  # 16-bit 65535 -> 255
    assert data.skipped == ()
    assert snapshot(mixed) == before


def test_all_gray_gives_one_channel_and_16_bit_scaling(tmp_path: Path) -> None:
    save_gray(tmp_path / "g" / "a" / "l.png", 50)
    Image.fromarray(np.full((12, 12), 128 * 257, dtype=np.uint16)).save(tmp_path / "g/a/w.png")
    save_gray(tmp_path / "g" / "b" / "m.png", 200)
    Image.new("LA", (12, 12), (0, 0)).save(tmp_path / "g" / "b" / "la.png")
    data = load_dataset(str(tmp_path / "g"), "train", image_size=6, seed=1)
    assert data.images.shape == (4, 1, 6, 6)
    values = sorted(int(v) for v in data.images[:, 0, 3, 3])
    assert values == [50, 128, 200, 255]  # LA fully transparent -> white
    with pytest.raises(ValueError, match="no images for split 'test'"):
        load_dataset(str(tmp_path / "g"), "test")  # 2 per class: 0.2 of 2 rounds to 0


def test_exif_orientation_applied(tmp_path: Path) -> None:
    # Stored 32 wide x 16 tall: top half black, bottom half white. Orientation 6 means
    # "rotate 90 degrees clockwise to display": black ends up on the right.
    stored = np.zeros((16, 32), dtype=np.uint8)
    stored[8:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photos" / "cls" / "rotated.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    save_gray(tmp_path / "photos" / "cls" / "other.png", 0)
    data = load_folder(tmp_path / "photos", image_size=16, test_fraction=0.01)
    image = data.images[1, 0].float()
    left, right = image[:, :8].mean(), image[:, 8:].mean()
    assert left > 200
    assert right < 50


def test_corrupt_files_skipped_with_count_or_raise_when_strict(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(3):
        save_gray(root / "ok" / f"{i}.png", 10 * i)
    (root / "ok" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = root / "ok" / "0.png"
    (root / "ok" / "cut.png").write_bytes(good.read_bytes()[:40])
    before = snapshot(root)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable .*broken\.png, cut\.png"):
        data = load_folder(root, image_size=4, test_fraction=0.01)
    assert len(data) == 3
    assert len(data.skipped) == 2
    assert "broken.png" in data.skipped[0]
    with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
        load_folder(root, image_size=4, test_fraction=0.01, strict=True)
    assert snapshot(root) == before


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "bombs"
    save_gray(root / "c" / "small.png", 7, size=(10, 10))
    save_gray(root / "c" / "over.png", 7, size=(40, 40))  # 1600 px: warning turned error
    save_gray(root / "c" / "huge.png", 7, size=(64, 64))  # 4096 px: Pillow's own error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(UserWarning, match="skipped 2"):
        data = load_folder(root, image_size=4, test_fraction=0.01)
    assert len(data) == 1
    assert all("DecompressionBomb" in s for s in data.skipped)
    with pytest.raises(ValueError, match=r"huge\.png: cannot read image: DecompressionBomb"):
        load_dataset(str(root), image_size=4, strict=True)


def test_train_val_folders_are_the_splits(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("x", "y"):
            for i in range(n):
                save_gray(tmp_path / "tv" / split / cls / f"{i}.png", 40 * i)
    Image.new("RGB", (5, 5), (1, 2, 3)).save(tmp_path / "tv" / "val" / "y" / "colour.png")
    train = load_folder(tmp_path / "tv", "train", image_size=5)
    test = load_folder(tmp_path / "tv", "test", image_size=5)
    assert (len(train), len(test)) == (6, 5)
    assert train.classes == test.classes == ("x", "y")
    assert train.images.shape[1] == test.images.shape[1] == 3  # one colour image in val


def test_fraction_split_is_stratified_deterministic_and_disjoint(tmp_path: Path) -> None:
    for cls in range(2):
        for i in range(10):
            save_gray(tmp_path / "s" / f"c{cls}" / f"{i}.png", 10 * i + cls, size=(4, 4))

    def values(split: str, seed: int) -> set[int]:
        data = load_folder(tmp_path / "s", split, image_size=4, seed=seed)
        return {int(v) for v in data.images[:, 0, 0, 0]}

    train, test = values("train", 0), values("test", 0)
    assert len(train) == 16
    assert len(test) == 4
    assert not train & test
    assert sum(v % 2 for v in test) == 2  # two of each class
    assert values("test", 0) == test
    assert any(values("test", seed) != test for seed in (1, 2, 3))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="path not found") as info:
        load_dataset(str(tmp_path / "missing"))
    assert "'shapes'" in str(info.value)
    assert "'fashion-mnist'" in str(info.value)
    (tmp_path / "flat").mkdir()
    save_gray(tmp_path / "flat" / "loose.png", 1)
    with pytest.raises(ValueError, match="no class folders"):
        load_folder(tmp_path / "flat")
    (tmp_path / "flat" / "empty_class").mkdir()
    with pytest.raises(ValueError, match="empty_class: class folder has no image files"):
        load_folder(tmp_path / "flat")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]"):
        load_folder(tmp_path / "flat", "validation")


def test_unknown_class_in_test_folder(tmp_path: Path) -> None:
    save_gray(tmp_path / "d" / "train" / "a" / "0.png", 1)
    save_gray(tmp_path / "d" / "test" / "zebra" / "0.png", 1)
    with pytest.raises(ValueError, match=r"'zebra' is not a training class"):
        load_folder(tmp_path / "d", "test")
