"""Every subcommand given a missing path, a wrong kind of file, a run of the wrong task or a
number out of range: exit status 2 (usage) or 1 (runtime) and one line on stderr, never a
traceback; ``--debug`` / ``ANTLERS_DEBUG=1`` add the traceback."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from antlers.cli import main

# {run}: a classify run; {png}: a readable image; {text}: a text file; {dir}: a folder.
CASES = [
    ("conv --image /nonexistent/x.png", 2, "/nonexistent/x.png: no such file"),
    ("conv --image {text}", 2, "cannot read as an image"),
    ("conv --image {dir}", 2, "is a folder, not an image file"),
    ("summary no_such_model", 2, "no_such_model"),
    ("summary lecture_cnn --input 3x0x5", 2, "is not a shape CxHxW"),
    ("summary lecture_cnn --input 3x90000x90000", 2, "is too large"),
    ("params --height 0", 2, "argument --height: 0 is out of range (allowed: >= 1)"),
    ("params --kernel-size x", 2, "'x' is not an integer"),
    ("tour --chapter 99", 2, "invalid choice: 99"),
    ("train classify --resume /nonexistent", 2, "/nonexistent"),
    ("train segment --resume {run}", 2, "classify"),
    ("train classify --epochs 0", 2, "epochs and batch_size must be >= 1"),
    ("train classify --batch-size -5", 2, "epochs and batch_size must be >= 1"),
    ("train classify --data /nonexistent/folder --epochs 1", 2, "/nonexistent/folder"),
    ("train classify --max-steps 0", 2, "max_steps must be >= 1 step, got 0"),
    ("train classify --ema 5", 2, "ema must be a decay in [0, 1) (0: off), got 5.0"),
    ("train classify --patience -2", 2, "patience must be >= 1 epoch, got -2"),
    ("train classify --clip-grad -1", 2, "clip_grad must be > 0, got -1.0"),
    ("train classify --crop -3", 2, "crop must be >= 0 pixels, got -3"),
    ("train classify --lr nan", 2, "lr must be >= 0, got nan"),
    ("eval /nonexistent", 2, "/nonexistent"),
    ("eval {text}", 2, "must be a .safetensors file"),
    ("eval {run} --split train", 2, "invalid choice: 'train'"),
    ("predict /nonexistent {png}", 2, "/nonexistent"),
    ("predict {run} /nonexistent.png", 2, "/nonexistent.png: no such file"),
    ("predict {run} {text}", 2, "cannot read as an image"),
    ("predict {run} {dir}", 2, "is a folder, not an image file"),
    ("predict {run} {png} --top 0", 2, "argument --top: 0 is out of range"),
    ("convert /nonexistent.json {dir}/out", 2, "not a COCO .json file or a YOLO folder"),
    ("convert {json} {dir}/out", 2, "line 1, column 1: malformed JSON"),
    ("explain {run} --k 0", 2, "argument --k: 0 is out of range (allowed: in 1..64)"),
    ("explain {run} --limit -1", 2, "argument --limit: -1 is out of range"),
    ("explain {run} --image {text} --limit 4", 2, "cannot read as an image"),
    ("inspect /nonexistent/run", 2, "not a run folder, a .safetensors file"),
    ("slide {run} /nonexistent.png", 2, "/nonexistent.png: no such file"),
    ("slide {text} {png}", 2, "must be a .safetensors file"),
    ("sample /nonexistent", 2, "/nonexistent"),
    ("sample {run}", 2, "needs a 'generate' run, this is a 'classify' run"),
    ("sample {run} --n 100000", 2, "argument --n: 100000 is out of range (allowed: in 1..1024)"),
    ("sample {run} --steps 0", 2, "argument --steps: 0 is out of range"),
    ("sample {run} --eta -1", 2, "argument --eta: -1 is out of range (allowed: >= 0)"),
    ("sample {run} --guidance nan", 2, "argument --guidance: nan is out of range"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli")
    Image.new("L", (20, 20), 9).save(folder / "x.png")
    (folder / "notes.png").write_text("not an image\n")
    (folder / "broken.json").write_text("")
    (folder / "a folder.png").mkdir()
    return {
        "png": str(folder / "x.png"),
        "text": str(folder / "notes.png"),
        "json": str(folder / "broken.json"),
        "dir": str(folder / "a folder.png"),
    }


@pytest.mark.parametrize(("command", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_an_exit_status(
    command: str,
    status: int,
    expected: str,
    files: dict[str, str],
    classify_run: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = [w.format(run=classify_run.path, **files) for w in command.split()]
    words = [files["dir"] if w == "{dir}" else w for w in words]
    try:
        code = main(words)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == status, err
    assert err.startswith("antlers: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert expected in err


def test_a_runtime_failure_exits_1_and_debug_shows_the_traceback(
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import antlers.viz.figures

    def disk_full(figure: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(antlers.viz.figures, "save_figure", disk_full)
    out = tmp_path / "edges.png"
    argv = ["conv", "--image", files["png"], "--out", str(out)]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"antlers: error: {out}: No space left on device\n"
    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith(f"antlers: error: {out}: No space left on device\n")


def test_a_bug_is_named_an_internal_error_and_the_variable_shows_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import antlers.conv.examples

    def broken(*args: object) -> str:
        return {}["moose"]

    monkeypatch.setattr(antlers.conv.examples, "params_text", broken)
    assert main(["params"]) == 1
    err = capsys.readouterr().err
    assert (
        err == "antlers: error: internal error: KeyError: 'moose' (ANTLERS_DEBUG=1 shows where)\n"
    )
    monkeypatch.setenv("ANTLERS_DEBUG", "1")
    assert main(["params"]) == 1
    assert 'return {}["moose"]' in capsys.readouterr().err


def test_the_console_script_prints_one_line_for_a_missing_run() -> None:
    script = Path(sys.executable).parent / "antlers"
    result = subprocess.run(
        [str(script), "train", "classify", "--resume", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("antlers: error: /nonexistent")


def test_train_stopped_before_the_first_epoch_ended_says_so(tmp_path) -> None:
    """antlers.train with --max-steps inside the first epoch: one line saying why there are no
    weights and how to continue (it said "not a finished run folder?")."""
    import antlers
    from antlers.engine.checkpoint import CheckpointError

    options = {"data": "digits", "model": "lecture_cnn", "image_size": 16, "epochs": 1}
    with pytest.raises(CheckpointError, match=r"stopped \(max_steps\) before the first epoch"):
        antlers.train("classify", max_steps=2, out=str(tmp_path), **options)
    resumed = antlers.train("classify", resume=tmp_path / "classify" / "exp", max_steps=None)
    assert resumed.epoch == 1
