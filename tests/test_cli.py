"""The command line: exact key lines, files written, one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from antlers.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_conv_prints_the_lecture_edge_detector(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "conv")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "input 5x6 (a vertical line in column 3):"
    assert lines[1:6] == ["  0 0 0 1 0 0"] * 5
    assert lines[6] == "kernel 3x3 (vertical_line):"
    assert lines[7:10] == ["  -1  2 -1"] * 3
    assert lines[10] == "output 3x4 = (5-3+1)x(6-3+1):"
    assert lines[11:14] == ["   0 -3  6 -3"] * 3
    assert lines[14] == "element (1, 2) = kernel . input[1:4, 2:5]:"
    assert lines[15].startswith("  out[1, 2] = ")
    assert lines[15].endswith("= 6")


def test_conv_other_kernel_on_the_toy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "conv", "--kernel", "horizontal_line")
    assert code == 0
    assert "kernel 3x3 (horizontal_line):" in out.splitlines()
    # A horizontal-line detector does not answer a vertical line at the centre column.
    assert "   0 -3  6 -3" not in out


def test_conv_on_a_photo_writes_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: pytest.TempPathFactory
) -> None:
    image = tmp_path / "stripes.png"
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, 10] = 255
    Image.fromarray(pixels).save(image)
    before = image.read_bytes()
    out_png = tmp_path / "out" / "edges.png"
    code, out, _ = run(
        capsys, "conv", "--image", str(image), "--kernel", "sobel_x", "--out", str(out_png)
    )
    assert code == 0
    assert out.splitlines() == [f"sobel_x on {image}: 20x30 -> 18x28", f"wrote {out_png}"]
    with Image.open(out_png) as written:
        assert written.format == "PNG"
        assert written.size[0] > 300
    assert image.read_bytes() == before  # the user's file is untouched


def test_params_lecture_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "params")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "input 5x6 = 30 values -> output 3x4 = 12 values"
    assert lines[1] == "convolution 3x3 + bias: 1x(1x3x3+1) = 10 parameters"
    assert lines[2] == "fully connected 30 -> 12: 12x(30+1) = 372 parameters"


def test_summary_lecture_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "lecture_cnn")
    assert code == 0
    assert "10x(3x3x3+1) = 280" in out
    assert "10x(10x3x3+1) = 910" in out
    assert "4x(1760+1) = 7,044" in out
    assert "10x11x16" in out


def test_summary_alexnet_at_224_names_the_layer_that_breaks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The paper's figure says 224, but 11x11/4 only gives 55 from 227: at 224 the FC breaks.
    code, _, err = run(capsys, "summary", "alexnet", "--input", "3x224x224")
    assert code == 2
    assert err.startswith("antlers: error: ")
    assert "9216" in err
    assert "6400" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["conv", "--kernel", "moose"], "invalid choice: 'moose' (choose from 'box_blur'"),
        (["summary", "lecture_cnn", "--input", "3x50"], "is not a shape CxHxW"),
        (["tour", "--chapter", "99"], "invalid choice: 99"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "classify", "--warmup", "1"], "warmup must be a fraction of training in [0, 1)"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "antlers", *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("antlers: error: ")
    assert expected in lines[0]


def test_missing_image_file_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "conv", "--image", "/nonexistent/moose.jpg")
    assert code == 2
    assert out == ""
    assert err == "antlers: error: /nonexistent/moose.jpg: no such file\n"


def test_corrupt_image_file_names_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: pytest.TempPathFactory
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    code, _, err = run(capsys, "conv", "--image", str(bad))
    assert code == 2
    assert err.startswith(f"antlers: error: {bad}: cannot read as an image")
