"""IDX reader, MNIST / Fashion-MNIST lookup order, downloads and the offline error."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from antlers.data import DatasetNotFoundError, fetch, load_dataset, mnist, read_idx
from antlers.data.idx import write_idx

TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME (empty ~/.cache/antlers); no $ANTLERS_DATA, Debian folder or network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("ANTLERS_DATA", raising=False)
    no_system = dataclasses.replace(mnist.FASHION_MNIST, system_folders=())
    monkeypatch.setattr(mnist, "FASHION_MNIST", no_system)

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("network is unreachable (test)")

    monkeypatch.setattr(fetch, "urlopen", offline)
    return home


def write_mnist(folder: Path, n: int, value: int, gz: bool = True) -> np.ndarray:
    """Write a tiny MNIST-like train split whose images are all `value`; returns the images."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.full((n, 28, 28), value, dtype=np.uint8)
    images[:, 0, 0] = np.arange(n, dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels)
    return images


@pytest.mark.parametrize("name", ["raw-ubyte", "data.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_exact(tmp_path: Path, name: str, dtype: type) -> None:
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype is np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, array)


def test_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "no-suffix", array, compress=True)
    write_idx(tmp_path / "plain.gz", array, compress=False)
    assert (tmp_path / "no-suffix").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)


def test_truncated_file_names_file_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((5, 4, 4), dtype=np.uint8))
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-30]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: truncated") as info:
        read_idx(path)
    assert "5x4x4 = 80 bytes, file has 50" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01x", "bad magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01x", "unknown dtype code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "too long"),
        (b"\x00\x00", "too short"),
        (b"\x1f\x8bnot really gzip", "corrupt gzip"),
    ],
)
def test_malformed_idx_errors_name_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"labels-idx1-ubyte: .*{message}"):
        read_idx(path)


def test_mnist_loads_from_data_dir(tmp_path: Path, isolated_home: Path) -> None:
    images = write_mnist(tmp_path / "mine", n=12, value=200, gz=False)
    train = load_dataset("mnist", "train", data_dir=tmp_path / "mine")
    assert train.images.shape == (12, 1, 28, 28)
    np.testing.assert_array_equal(train.images[:, 0].numpy(), images)
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert train.classes == tuple("0123456789")
    assert load_dataset("mnist", data_dir=tmp_path / "mine", image_size=14).images.shape == (
        12,
        1,
        14,
        14,
    )


def test_mnist_image_label_count_mismatch(tmp_path: Path, isolated_home: Path) -> None:
    write_mnist(tmp_path, n=5, value=1)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"5 images but .* 4 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_lookup_order(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(tmp_path / "explicit", n=3, value=1)
    write_mnist(tmp_path / "env" / "mnist", n=4, value=2)
    write_mnist(isolated_home / ".cache" / "antlers" / "mnist", n=5, value=3)
    monkeypatch.setenv("ANTLERS_DATA", str(tmp_path / "env"))

    def first_value(**kwargs: object) -> int:
        return int(load_dataset("mnist", download=False, **kwargs).images[0, 0, 5, 5])

    assert first_value(data_dir=tmp_path / "explicit") == 1
    assert first_value(data_dir=tmp_path / "empty") == 2
    monkeypatch.delenv("ANTLERS_DATA")
    assert first_value() == 3


def test_fashion_mnist_system_folder_after_cache(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    write_mnist(system, n=6, value=9)
    source = dataclasses.replace(mnist.FASHION_MNIST, system_folders=(str(system),))
    monkeypatch.setattr(mnist, "FASHION_MNIST", source)
    found = load_dataset("fashion-mnist", download=False)
    assert len(found) == 6
    assert found.classes[0] == "T-shirt/top"
    assert found.classes[-1] == "Ankle boot"
    write_mnist(isolated_home / ".cache" / "antlers" / "fashion-mnist", n=2, value=4)
    assert len(load_dataset("fashion-mnist", download=False)) == 2


def test_debian_folder_is_searched_for_fashion_mnist() -> None:
    assert "/usr/share/datasets/fashion-mnist" in mnist.FASHION_MNIST.system_folders
    assert mnist.MNIST.system_folders == ()


def test_offline_error_names_files_and_folders(tmp_path: Path, isolated_home: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for name in TRAIN_FILES:
        assert name in message
    assert str(tmp_path / "nowhere") in message
    assert str(isolated_home / ".cache" / "antlers" / "mnist") in message
    assert "network is unreachable" in message
    assert "ANTLERS_DATA" in message
    leftovers = list((isolated_home / ".cache").rglob("*"))
    assert not [p for p in leftovers if p.is_file()]


def test_download_disabled_error(tmp_path: Path, isolated_home: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="downloading is disabled"):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)


class FakeResponse(io.BytesIO):
    """What urlopen returns, enough for the downloader."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_download_atomic_with_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"idx bytes" * 1000
    monkeypatch.setattr(fetch, "urlopen", lambda url, timeout: FakeResponse(payload))
    dest = tmp_path / "cache" / "file.gz"
    fetch.download_file("https://example.invalid/file.gz", dest, hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch.download_file("https://example.invalid/x.gz", tmp_path / "cache" / "x.gz", "0" * 32)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["file.gz"]


def test_mnist_download_uses_official_mirror_and_md5(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls: list[str] = []

    def serve(url: str, timeout: float) -> FakeResponse:
        urls.append(url)
        return FakeResponse(b"not the real file")

    monkeypatch.setattr(fetch, "urlopen", serve)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("mnist", "train", data_dir=tmp_path)
    assert urls == ["https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"]


def test_a_gzip_bomb_is_decompressed_only_as_far_as_its_header_claims(tmp_path: Path) -> None:
    """A 1x1 header followed by 64 MiB of zeros that gzip squeezes into ~64 KiB: the reader stops
    one byte past the claimed payload and calls the file too long, never holding 64 MiB."""
    import tracemalloc

    path = tmp_path / "bomb.gz"
    header = bytes([0, 0, 0x08, 2]) + np.asarray([1, 1], dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + bytes(1) + bytes(64 << 20), compresslevel=9))
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"bomb\.gz: too long"):
        read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_a_header_that_claims_more_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.gz"
    header = bytes([0, 0, 0x08, 3]) + np.asarray([1 << 20, 1 << 10, 1 << 10], ">u4").tobytes()
    path.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(ValueError, match=r"huge\.gz: header claims"):
        read_idx(path)
