"""Many image files decoded at once: worker processes give exactly the pixels one process gives
(each file by ``decode_image`` alone: the oracle), bad files are named in order, strict raises,
and a long decode reports its rate and ETA."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from antlers.data import decode
from antlers.data.decode import PARALLEL_FROM, decode_files, decode_image
from antlers.data.folder import DEFAULT_TEST_FRACTION, load_folder, select_files
from antlers.data.skips import DataError, Skips
from antlers.io.progress import Progress


def noise_files(folder: Path, count: int, bad: tuple[int, ...] = ()) -> list[Path]:
    """``count`` small random RGB images of varied sizes; the ones in ``bad`` are truncated."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        shape = (int(rng.integers(8, 20)), int(rng.integers(8, 20)), 3)
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        if i in bad:
            path.write_bytes(path.read_bytes()[:20])
        files.append(path)
    return files


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return noise_files(tmp_path_factory.mktemp("decode") / "x", PARALLEL_FROM + 44, bad=(5, 200))


def test_workers_give_the_pixels_of_one_file_at_a_time(many: list[Path]) -> None:
    rows = list(reversed(range(len(many))))  # rows need not follow the files' order
    parallel = np.zeros((len(many), 3, 10, 10), dtype=np.uint8)
    serial = np.zeros_like(parallel)
    kept = decode_files(many, rows, parallel, Skips(), workers=2, progress=False)
    assert kept == decode_files(many, rows, serial, Skips(), workers=1, progress=False)
    assert kept == [i for i in range(len(many)) if i not in (5, 200)]
    np.testing.assert_array_equal(parallel, serial)
    for i in (0, 77, len(many) - 1):
        expected = decode_image(many[i], 10, 3).transpose(2, 0, 1)
        np.testing.assert_array_equal(parallel[rows[i]], expected)
    assert not parallel[rows[5]].any()
    assert not parallel[rows[200]].any()


def test_bad_files_are_named_in_order_and_strict_raises_at_the_first(many: list[Path]) -> None:
    skips = Skips()
    out = np.zeros((len(many), 3, 4, 4), dtype=np.uint8)
    decode_files(many, range(len(many)), out, skips, workers=2, progress=False)
    assert [entry for entry, _ in skips.found] == ["0005.png", "0200.png"]
    assert all("cannot read image" in line for line in skips.lines)
    with pytest.raises(DataError, match=r"0005\.png"):
        decode_files(many, range(len(many)), out, Skips(strict=True), workers=2, progress=False)


def _die(*args: object, **kwargs: object) -> None:
    os._exit(9)  # as the OOM killer would end a worker


def test_a_worker_that_dies_is_one_line_not_a_traceback(
    many: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decode, "_decode_chunk", _die)  # the forked workers inherit it
    out = np.zeros((len(many), 3, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"a worker process died") as error:
        decode_files(many, range(len(many)), out, Skips(), workers=2, progress=False)
    assert "\n" not in str(error.value)


def test_a_folder_loads_each_file_as_decode_image_gives_it(tmp_path: Path) -> None:
    for label in ("a", "b"):
        noise_files(tmp_path / "set" / label, PARALLEL_FROM // 2 + 60)
    data = load_folder(tmp_path / "set", "train", image_size=12, progress=False)
    files = select_files(tmp_path / "set", "train", 0, DEFAULT_TEST_FRACTION)[0]
    assert len(files) == len(data) > PARALLEL_FROM  # the parallel path
    expected = np.stack([decode_image(f, 12, 3).transpose(2, 0, 1) for f in files])
    np.testing.assert_array_equal(data.images.numpy(), expected)


def test_plain_progress_lines_give_the_rate_and_the_eta() -> None:
    stream = io.StringIO()
    bar = Progress(400, "decoding images", stream=stream, unit="images")
    for _ in range(400 // 64 + 1):
        bar.update(64)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # at 25, 50 and 75%: one line each, even when a chunk jumps past two
    assert all("/400 images" in line and "ETA" in line for line in lines)
