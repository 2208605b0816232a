"""Broken checkpoints and configs: garbage, truncated or hand-made weights files, training states
and config.json files, and a run folder of another task, are each refused with one line naming
the file (a CheckpointError or ValueError; `antlers` prints it as one line), never a traceback,
and a state file that is not torch.save's archive is never handed to the unpickler."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from safetensors.torch import save as safetensors_bytes

from antlers.cli import main
from antlers.config import TrainConfig, load_run_config
from antlers.engine.checkpoint import CheckpointError, load_state, load_weights
from antlers.run import Run, train

if TYPE_CHECKING:
    from conftest import TrainedRun


def header(entries: dict, data: bytes = b"\0" * 16) -> bytes:
    """A safetensors file: the 8-byte header length, the JSON header, the data."""
    text = json.dumps(entries).encode()
    return struct.pack("<Q", len(text)) + text + data


def with_meta(good: Path, change: Callable[[dict], object]) -> bytes:
    """``good``'s tensors with its antlers metadata changed by ``change`` (in place)."""
    tensors, meta = load_weights(good)
    change(meta)
    return safetensors_bytes(tensors, metadata={"antlers": json.dumps(meta)})


F32 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
WEIGHTS: dict[str, Callable[[Path], bytes]] = {
    "empty": lambda good: b"",
    "garbage": lambda good: b"not a safetensors file at all " * 10,
    "truncated": lambda good: good.read_bytes()[: good.stat().st_size // 2],
    "a header length of 2**60": lambda good: struct.pack("<Q", 1 << 60) + b"{}",
    "a 2**40 x 2**40 tensor": lambda good: header({"w": {**F32, "shape": [1 << 40, 1 << 40]}}),
    "offsets past the end": lambda good: header({"w": {**F32, "data_offsets": [0, 1 << 50]}}),
    "no antlers metadata": lambda good: header({"w": F32}),
    "metadata not JSON": lambda good: header({"__metadata__": {"antlers": "{oops"}, "w": F32}),
    "metadata a list": lambda good: header({"__metadata__": {"antlers": "[1]"}, "w": F32}),
    "an unknown task": lambda good: with_meta(good, lambda m: m.update(task="moose")),
    "a wrong type": lambda good: with_meta(good, lambda m: m.update(image_size="big")),
    "tensors of another shape": lambda good: with_meta(good, lambda m: m.update(classes=["a"])),
}


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `antlers ARGV`, which must fail with exactly one line on stderr; that line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("antlers: error: "), err
    return err


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_a_broken_weights_file_is_one_line(
    case: str, classify_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(WEIGHTS[case](classify_run.path / "weights" / "best.safetensors"))
    with pytest.raises(CheckpointError) as raised:
        Run.load(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert "\n" not in str(raised.value)
    assert str(path) in one_line_error(["eval", str(path)], capsys)


@pytest.fixture
def run_copy(classify_run: TrainedRun, tmp_path: Path) -> Path:
    """A copy of the finished classify run, to break."""
    return Path(shutil.copytree(classify_run.path, tmp_path / "classify" / "copy"))


def torch_save(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("empty", lambda good: b""),
        ("garbage", lambda good: b"\x80\x04garbage" * 30),
        ("truncated", lambda good: good[: len(good) // 2]),
        ("a plain pickle", lambda good: pickle.dumps({"model": {}, "loop": {}})),
        ("torch.save of a list", lambda good: torch_save([1, 2, 3])),
    ],
)
def test_a_broken_state_file_is_refused_before_it_is_unpickled(
    case: str, make: Callable[[bytes], bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = torch_save({"model": {"w": torch.ones(2)}, "loop": {"step": 1}})
    path = tmp_path / "last.pt"
    path.write_bytes(make(good))
    if case != "torch.save of a list":  # not torch.save's zip archive: torch never reads it

        def never(*_: object, **__: object) -> None:
            raise AssertionError("torch.load called on a file that is not a torch archive")

        monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError, match=f"^{path}: (not a training state|cannot read)"):
        load_state(path)


@pytest.mark.parametrize(
    ("case", "state"),
    [
        ("garbage", lambda: b"garbage" * 40),
        ("keys missing", lambda: torch_save({"model": {}})),
        ("another task's state", None),  # the segment run's state
        ("a loop position of strings", "loop"),
    ],
)
def test_resuming_from_a_broken_state_is_one_line(
    case: str,
    state: object,
    run_copy: Path,
    segment_run: TrainedRun,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = run_copy / "state" / "last.pt"
    if state is None:
        shutil.copy(segment_run.path / "state" / "last.pt", path)
    elif state == "loop":
        good = load_state(path)
        path.write_bytes(torch_save({**good, "loop": {**good["loop"], "step": "7"}}))
    else:
        path.write_bytes(state())  # type: ignore[operator]
    config = (run_copy / "config.json").read_bytes()
    line = one_line_error(["train", "classify", "--resume", str(run_copy)], capsys)
    assert f"{path}: " in line
    assert (run_copy / "config.json").read_bytes() == config  # refused before writing anything


CONFIGS: dict[str, str | None] = {
    "not JSON": '{"task": "classify", "epochs": 2,',
    "a list": '["classify"]',
    "an unknown key": '{"task": "classify", "moose": 1}',
    "no task": '{"data": "digits"}',
    "a string for a number": '{"task": "classify", "batch_size": "8"}',
    "a bool for a number": '{"task": "classify", "epochs": true}',
    "a number for a bool": '{"task": "classify", "augment": 1}',
    "a value out of range": '{"task": "classify", "optimizer": "adam"}',
    "no config.json": None,
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_broken_config_is_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CONFIGS[case]
    if text is not None:
        (tmp_path / "config.json").write_text(text)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'config.json'}: "):
        load_run_config(tmp_path)
    line = one_line_error(["train", "classify", "--resume", str(tmp_path)], capsys)
    assert str(tmp_path / "config.json") in line


def test_a_config_with_fields_missing_takes_their_defaults() -> None:
    """A config written before a field existed still loads (only ``task`` is required)."""
    assert TrainConfig.from_json('{"task": "detect", "epochs": 3}') == TrainConfig(
        task="detect", epochs=3
    )


def test_a_run_folder_of_another_task_is_refused(
    classify_run: TrainedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(["train", "segment", "--resume", str(classify_run.path)], capsys)
    assert line.strip().endswith(
        f"{classify_run.path} is a 'classify' run, not 'segment': "
        f"antlers train classify --resume {classify_run.path}"
    )
    with pytest.raises(ValueError, match="is a 'classify' run, not 'generate'"):
        train("generate", resume=classify_run.path)
