"""The decoded cache: it gives exactly the pixels, labels and skipped files of decoding in this
run (``cache="off"``: the oracle), decodes only what changed, never trusts a damaged cache, is
built once by two processes at a time, and never writes into the user's folder."""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from antlers.data import cache as cache_module
from antlers.data.cache import decoded_cache_folder, open_decoded
from antlers.data.folder import DEFAULT_TEST_FRACTION, load_folder, select_files, use_cache
from antlers.data.skips import DataError

SIZE = 12


def noise_image(shape: tuple[int, int, int], path: Path) -> None:
    """A random RGB image of ``shape`` saved at ``path``."""
    rng = np.random.default_rng(len(path.name) + shape[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two class folders of 12 small RGB images each, one of them unreadable; the cache in
    tmp_path/cache."""
    monkeypatch.setenv("ANTLERS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(12):
            shape = (int(rng.integers(10, 30)), int(rng.integers(10, 30)), 3)
            image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
            image.save(tmp_path / "set" / label / f"{i:02d}.png")
    (tmp_path / "set" / "dog" / "05.png").write_bytes(b"not a png")
    return tmp_path / "set"


@pytest.fixture
def decoded_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the cache decodes (appended at each call)."""
    names: list[str] = []
    real = cache_module.decode_into

    def counting(files, *args, **kwargs):  # type: ignore[no-untyped-def]
        names.extend("/".join(Path(f).parts[-2:]) for f in files)
        return real(files, *args, **kwargs)

    monkeypatch.setattr(cache_module, "decode_into", counting)
    return names


def assert_same_as_decoding(root: Path) -> None:
    """Both splits through the cache equal both splits decoded in this run."""
    skipped = []
    for split in ("train", "test"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unreadable file's; compared below
            cached = load_folder(root, split, image_size=SIZE, cache="on", progress=False)
            direct = load_folder(root, split, image_size=SIZE, cache="off", progress=False)
        assert torch.equal(cached.images, direct.images)
        assert torch.equal(cached.labels, direct.labels)
        assert cached.skipped == direct.skipped
        skipped += cached.skipped
    assert len(skipped) == 1
    assert "dog/05.png: cannot read image" in skipped[0]


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root: its mtime and the hash of its bytes."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_cache_gives_what_decoding_gives_and_later_runs_decode_nothing(
    photos: Path, decoded_files: list[str]
) -> None:
    before = snapshot(photos)
    assert_same_as_decoding(photos)
    assert len(decoded_files) == 24  # both splits, once, at the first load
    assert_same_as_decoding(photos)
    assert len(decoded_files) == 24  # the second run decoded nothing
    assert snapshot(photos) == before  # the user's folder: not a byte, not an mtime changed
    folder = decoded_cache_folder(photos, SIZE)
    assert folder.parent == photos.parent / "cache" / "decoded"
    assert len(list(folder.glob("pixels-*.u8"))) == 1


def test_a_changed_folder_decodes_only_what_changed(photos: Path, decoded_files: list[str]) -> None:
    load_folder(photos, "test", image_size=SIZE, cache="on", progress=False)
    decoded_files.clear()
    (photos / "cat" / "03.png").unlink()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)).save(
        photos / "cat" / "07.png"
    )
    Image.fromarray(rng.integers(0, 256, (20, 9, 3), dtype=np.uint8)).save(
        photos / "dog" / "new.png"
    )
    os.utime(photos / "cat" / "07.png", ns=(1, 1))  # a changed file, whatever its new mtime
    assert_same_as_decoding(photos)
    assert sorted(decoded_files) == ["cat/07.png", "dog/new.png"]


def test_a_colour_image_in_a_gray_folder_decodes_everything_again(
    photos: Path, decoded_files: list[str]
) -> None:
    for path in photos.rglob("*.png"):
        if path != photos / "dog" / "05.png":
            Image.open(path).convert("L").save(path)
    load_folder(photos, "test", image_size=SIZE, cache="on", progress=False)
    assert load_folder(photos, "test", image_size=SIZE, cache="on").images.shape[1] == 1
    decoded_files.clear()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(
        photos / "cat" / "rgb.png"
    )
    assert_same_as_decoding(photos)
    assert len(decoded_files) == 25  # C went from 1 to 3: every row is new


@pytest.mark.parametrize("damage", ["truncated pixels", "garbage manifest", "no pixels file"])
def test_a_damaged_cache_is_rebuilt_not_trusted(
    photos: Path, decoded_files: list[str], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    load_folder(photos, "test", image_size=SIZE, cache="on", progress=False)
    folder = decoded_cache_folder(photos, SIZE)
    (pixels,) = folder.glob("pixels-*.u8")
    if damage == "truncated pixels":
        os.truncate(pixels, pixels.stat().st_size - 1)
    elif damage == "garbage manifest":
        (folder / "manifest.json").write_text('{"version": 1, "files": [')
    else:
        pixels.unlink()
    decoded_files.clear()
    assert_same_as_decoding(photos)
    assert len(decoded_files) == 24
    assert f"{folder} is damaged" in capsys.readouterr().err


def test_a_build_killed_midway_leaves_no_cache_to_trust(
    photos: Path, decoded_files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of decoding would

    monkeypatch.setattr(cache_module, "decode_into", killed)
    with pytest.raises(KeyboardInterrupt):
        load_folder(photos, "test", image_size=SIZE, cache="on", progress=False)
    folder = decoded_cache_folder(photos, SIZE)
    assert not (folder / "manifest.json").exists()
    assert list(folder.glob(".pixels-*.partial"))  # the interrupted file, never read
    monkeypatch.undo()
    monkeypatch.setenv("ANTLERS_CACHE", str(photos.parent / "cache"))
    assert_same_as_decoding(photos)
    assert not list(folder.glob(".pixels-*.partial"))  # removed by the next build


def _open(root: Path, files: list[Path], results: multiprocessing.Queue) -> None:
    results.put(open_decoded(root, files, SIZE, progress=False).decoded)


def test_two_processes_build_the_cache_once(photos: Path) -> None:
    every_file = select_files(photos, "train", 0, DEFAULT_TEST_FRACTION)[3]
    folder = decoded_cache_folder(photos, SIZE)
    folder.mkdir(parents=True)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with (folder / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # both must wait, then race for the lock
        ranks = [context.Process(target=_open, args=(photos, every_file, results)) for _ in "ab"]
        for rank in ranks:
            rank.start()
        fcntl.flock(lock, fcntl.LOCK_UN)
    for rank in ranks:
        rank.join(timeout=120)
        assert rank.exitcode == 0
    assert sorted(results.get(timeout=5) for _ in ranks) == [0, len(every_file)]


def test_strict_names_the_unreadable_file_as_decoding_does(photos: Path) -> None:
    messages = []
    for cache in ("on", "off", "on"):
        with pytest.raises(DataError, match=r"05\.png: cannot read image") as error:
            load_folder(photos, "train", image_size=SIZE, strict=True, cache=cache)
        messages.append(str(error.value))
    assert messages[0] == messages[1] == messages[2]


def test_the_rule_and_a_full_disk(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert [use_cache("auto", n) for n in (999, 1000)] == [False, True]
    assert use_cache("on", 1)
    assert not use_cache("off", 10**6)
    with pytest.raises(ValueError, match="cache must be one of auto, on, off"):
        load_folder(photos, "train", cache="yes")
    load_folder(photos, "test", image_size=SIZE, progress=False)  # auto, 24 images: no cache
    assert not (photos.parent / "cache").exists()
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _: types.SimpleNamespace(free=0))
    with pytest.raises(ValueError, match=r"needs 0\.0 GiB and 0\.0 GiB is free.*--data-cache off"):
        load_folder(photos, "test", image_size=SIZE, cache="on", progress=False)


def test_train_reads_the_cache_its_config_names(photos: Path) -> None:
    from antlers.config import TrainConfig
    from antlers.tasks import get_task

    task, seen = get_task("classify"), {}
    for cache in ("off", "on"):
        config = TrainConfig(data=str(photos), image_size=SIZE, data_cache=cache)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = task.load_data(config)
        loaders = (data.train, data.val, data.test)
        seen[cache] = [[b["image"] for b in loader.epoch(1)] for loader in loaders]
        seen[cache].append(data.model_config)
        assert decoded_cache_folder(photos, SIZE).exists() == (cache == "on")
    assert data.train.rows is not None  # the cache's pixels, mapped, not copied
    for off, on in zip(seen["off"][:3], seen["on"][:3], strict=True):
        assert len(off) == len(on) > 0
        assert all(torch.equal(a, b) for a, b in zip(off, on, strict=True))
    assert seen["off"][3] == seen["on"][3]  # pixel statistics and whitening included
    with pytest.raises(ValueError, match="data_cache must be one of auto, on, off"):
        TrainConfig(data=str(photos), data_cache="always")


PEAK_ANON = """
import sys, threading, time
from antlers.engine.fit import fit
from antlers.tasks import default_config, get_task

peak = [0]
def sample():
    while True:
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
        peak[0] = max(peak[0], kib)
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
config = default_config("classify", data=sys.argv[1], data_cache="on", model="lecture_cnn",
                        image_size=64, batch_size=64, max_steps=3, out=sys.argv[2], device="cpu")
fit(get_task("classify"), config, log=lambda *args: None)
time.sleep(0.05)
print(peak[0])
"""


def test_training_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    """Peak anonymous memory (the page cache of the mapped cache excluded) of building the
    cache and training on 2,000 and on 8,000 images of 64 px: a copy of the images in memory
    would add 12 KiB per image, 74 MB for the 6,000 more, and a float copy four times that.
    glibc's malloc is told to return large freed blocks at once (it keeps them otherwise, by
    a threshold that adapts as the process runs), so that the peak measures memory in use."""
    rng = np.random.default_rng(0)
    pool = []
    for i in range(16):
        pool.append(tmp_path / f"pool{i}.png")
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(pool[-1])
    peaks = []
    for count in (2000, 8000):
        root = tmp_path / f"set{count}"
        for i in range(count):
            (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
            os.link(pool[i % len(pool)], root / "ab"[i % 2] / f"{i:05d}.png")
        env = os.environ | {"ANTLERS_CACHE": str(tmp_path / "cache")}
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"  # freed large blocks go back: live memory only
        command = [sys.executable, "-c", PEAK_ANON, str(root), str(tmp_path / "runs")]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(int(done.stdout.split()[-1]) * 1024)
    assert peaks[1] - peaks[0] < 25 * 2**20, [f"{p / 2**20:.0f} MiB" for p in peaks]
