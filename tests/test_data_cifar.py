"""CIFAR-10 binary reader, lookup, archive extraction and errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from antlers.data import DatasetNotFoundError, fetch, load_dataset
from antlers.data.cifar import CIFAR10_CLASSES, extract_tar, read_cifar_batch, write_cifar_batch

TRAIN_BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)]


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME (empty ~/.cache/antlers), no $ANTLERS_DATA, no network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ANTLERS_DATA", raising=False)

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("no route to host (test)")

    monkeypatch.setattr(fetch, "urlopen", offline)
    return home


def random_batch(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def write_cifar(folder: Path, per_batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Five small train batches and a test batch in `folder`; returns the train data."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = [random_batch(per_batch, seed) for seed in range(5)]
    for name, (images, labels) in zip(TRAIN_BATCHES, parts, strict=True):
        write_cifar_batch(folder / name, images, labels)
    write_cifar_batch(folder / "test_batch.bin", *random_batch(3, seed=99))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_record_layout_label_then_rgb_planes(tmp_path: Path) -> None:
    planes = np.concatenate([np.full(1024, v, dtype=np.uint8) for v in (10, 20, 30)])
    record = np.concatenate([[7], planes]).astype(np.uint8)
    (tmp_path / "one.bin").write_bytes(record.tobytes())
    images, labels = read_cifar_batch(tmp_path / "one.bin")
    assert labels.tolist() == [7]
    assert images.shape == (1, 3, 32, 32)
    assert images[0, :, 5, 9].tolist() == [10, 20, 30]


def test_round_trip_exact(tmp_path: Path) -> None:
    images, labels = random_batch(4, seed=1)
    write_cifar_batch(tmp_path / "b.bin", images, labels)
    back_images, back_labels = read_cifar_batch(tmp_path / "b.bin")
    np.testing.assert_array_equal(back_images, images)
    np.testing.assert_array_equal(back_labels, labels)


def test_wrong_size_names_file_and_sizes(tmp_path: Path) -> None:
    (tmp_path / "data_batch_3.bin").write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(ValueError, match=r"data_batch_3\.bin: wrong size: 6151 bytes") as info:
        read_cifar_batch(tmp_path / "data_batch_3.bin")
    assert "3073" in str(info.value)


def test_label_out_of_range(tmp_path: Path) -> None:
    (tmp_path / "test_batch.bin").write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(ValueError, match=r"test_batch\.bin: label 12"):
        read_cifar_batch(tmp_path / "test_batch.bin")


def test_load_from_data_dir_with_meta(tmp_path: Path, isolated_home: Path) -> None:
    folder = tmp_path / "cifar" / "cifar-10-batches-bin"
    images, labels = write_cifar(folder)
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    train = load_dataset("cifar10", "train", data_dir=tmp_path / "cifar")
    np.testing.assert_array_equal(train.images.numpy(), images)
    np.testing.assert_array_equal(train.labels.numpy(), labels)
    assert train.classes == tuple(names)
    test = load_dataset("cifar10", "test", data_dir=folder, image_size=16)
    assert test.images.shape == (3, 3, 16, 16)


def test_default_classes_and_lookup_order(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(tmp_path / "env" / "cifar10", per_batch=1)
    write_cifar(isolated_home / ".cache" / "antlers" / "cifar10", per_batch=2)
    monkeypatch.setenv("ANTLERS_DATA", str(tmp_path / "env"))
    from_env = load_dataset("cifar10", download=False)
    assert len(from_env) == 5
    assert from_env.classes == CIFAR10_CLASSES
    monkeypatch.delenv("ANTLERS_DATA")
    assert len(load_dataset("cifar10", download=False)) == 10


def make_tar(path: Path, members: dict[str, bytes], link: str | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)


@pytest.mark.parametrize(
    ("members", "link"),
    [({"../escape.txt": b"x"}, None), ({"/abs.txt": b"x"}, None), ({"ok.txt": b"x"}, "evil")],
)
def test_extract_refuses_unsafe_members(
    tmp_path: Path, members: dict[str, bytes], link: str | None
) -> None:
    make_tar(tmp_path / "a.tar.gz", members, link)
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError, match="refusing unsafe member"):
        extract_tar(tmp_path / "a.tar.gz", tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())
    assert not (tmp_path / "escape.txt").exists()


def test_archive_in_data_dir_extracted_into_cache(tmp_path: Path, isolated_home: Path) -> None:
    source = tmp_path / "src" / "cifar-10-batches-bin"
    write_cifar(source)
    members = {f"cifar-10-batches-bin/{p.name}": p.read_bytes() for p in source.iterdir()}
    mine = tmp_path / "mine"
    mine.mkdir()
    make_tar(mine / "cifar-10-binary.tar.gz", members)
    test = load_dataset("cifar10", "test", data_dir=mine)
    assert len(test) == 3
    assert [p.name for p in mine.iterdir()] == ["cifar-10-binary.tar.gz"]
    cache = isolated_home / ".cache" / "antlers" / "cifar10" / "cifar-10-batches-bin"
    assert (cache / "test_batch.bin").read_bytes() == (source / "test_batch.bin").read_bytes()


def test_offline_error_names_archive_and_folders(tmp_path: Path, isolated_home: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert "test_batch.bin" in message
    assert "cifar-10-binary.tar.gz" in message
    assert str(tmp_path / "nowhere") in message
    assert str(isolated_home / ".cache" / "antlers" / "cifar10") in message
    assert "no route to host" in message
