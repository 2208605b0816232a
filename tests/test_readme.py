"""README's examples run: Python blocks execute, console blocks print what the README shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README.read_text(), flags=re.S)
CONSOLE = [body for lang, body in BLOCKS if lang == "console"]
PYTHON = [body for lang, body in BLOCKS if lang == "python"]


def test_readme_has_examples() -> None:
    assert len(CONSOLE) >= 4
    assert PYTHON


@pytest.mark.parametrize("block", CONSOLE, ids=lambda b: b.splitlines()[0][2:40])
def test_console_example(block: str, tmp_path: Path) -> None:
    command, *expected = block.strip().splitlines()
    assert command.startswith("$ antlers ")
    argv = shlex.split(command[2:])
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "antlers", *argv[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    printed = result.stdout.splitlines()
    if "alexnet" in command and "224" in command:
        assert result.returncode == 2  # the README presents this as the error it is
        assert "9216" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    for line in expected:  # the README shows a subset of the lines, in order
        assert line in printed, f"{line!r} not printed by {command!r}"
        printed = printed[printed.index(line) + 1 :]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.splitlines()[-1][:40])
def test_python_example(block: str) -> None:
    # Each block checks itself with assert statements; running it is the test.
    assert "assert " in block
    exec(compile(block, str(README), "exec"), {})
