"""The memory check before the first step: its measure against a hand count, a real refusal of an
impossible batch with one line and no run folder, and no trace left on the model or the RNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from antlers.cli import main
from antlers.engine.memory import check_step_memory, output_bytes, step_bytes


def test_output_bytes_adds_up_every_leaf_modules_outputs() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    x = torch.zeros(2, 1, 8, 8)
    conv = relu = flat = 2 * 4 * 8 * 8 * 4  # float32 bytes
    linear = 2 * 10 * 4
    assert output_bytes(model, lambda m: m(x)) == conv + relu + flat + linear


def test_step_bytes_counts_outputs_twice_and_parameters_four_times() -> None:
    model = nn.Linear(10, 10)  # 110 float32 parameters
    assert step_bytes(1000.0, 8, model) == 2 * 1000 * 8 + 4 * 110 * 4


def test_an_impossible_batch_is_refused_with_one_line_before_any_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    argv = ["train", "classify", "--data", "digits", "--batch-size", "10000000", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("antlers: error: --batch-size 10000000: ")
    assert "free on cpu" in err[0]
    assert not out.exists()


class _Task:
    """A task whose loss runs a model with batch norm and dropout on the batch's images."""

    def __init__(self) -> None:
        self.calls = 0

    def loss(self, model: nn.Module, batch: dict) -> dict:
        self.calls += 1
        return {"loss": model(batch["image"]).sum()}


class _Loader:
    def epoch(self, epoch: int):
        yield {"image": torch.randn(4, 3, 8, 8), "label": torch.zeros(4, dtype=torch.long)}


def test_the_probe_leaves_the_model_and_the_random_numbers_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10 GiB free: a batch of 100,000 3x8x8 images is over the bound (77 GB), so the probe
    runs, and finds it fits (about 2 KiB of outputs an image); a batch of 16 is not probed."""
    monkeypatch.setattr("antlers.engine.memory.available_bytes", lambda device: 10 * 2**30)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    task = _Task()
    check_step_memory(task, model, _Loader(), 100_000, torch.device("cpu"))
    assert task.calls == 1
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    check_step_memory(task, model, _Loader(), 16, torch.device("cpu"))
    assert task.calls == 1

    monkeypatch.setattr("antlers.engine.memory.available_bytes", lambda device: 1000)
    with pytest.raises(ValueError, match=r"--batch-size 16: .* more than the 1\.0 KiB free on cpu"):
        check_step_memory(task, model, _Loader(), 16, torch.device("cpu"))


def test_resizing_in_chunks_equals_one_interpolate_of_the_whole_set() -> None:
    """The chunked resize (chunks of 3 images here) against torch's interpolate of all at once."""
    from antlers.data.imageset import resize_images

    images = torch.randint(0, 256, (10, 2, 7, 9), dtype=torch.uint8)
    resized = resize_images(images, 12, chunk_bytes=4 * 2 * 12 * 12 * 3)
    whole = torch.nn.functional.interpolate(
        images.float(), size=(12, 12), mode="bilinear", antialias=True
    )
    assert torch.equal(resized, whole.round().clamp(0, 255).to(torch.uint8))


def test_a_data_set_too_large_for_memory_is_refused_before_it_is_resized(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--image-size 4096 on the digits would need gigabytes: with 64 MiB free, one line naming
    the size and the memory, exit 2, no run folder."""
    from antlers.data import imageset

    monkeypatch.setattr(imageset, "available_ram", lambda: 64 * 2**20)
    out = tmp_path / "runs"
    argv = ["train", "classify", "--data", "digits", "--image-size", "4096", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "image_size 4096: " in err[0]
    assert "0.1 GiB is free; choose a smaller --image-size" in err[0]
    assert not out.exists()
