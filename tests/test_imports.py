"""Importing antlers (and starting the CLI) must not import torch: it is slow and not needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

import antlers


@pytest.mark.parametrize(
    "code",
    [
        "import antlers",
        "import antlers.conv",
        "import antlers.conv.numpy_cnn",
        "import antlers.cli; antlers.cli.build_parser()",
        "import antlers.tour",
        "import antlers; antlers.conv2d",
    ],
)
def test_no_torch_import(code: str) -> None:
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_help_does_not_import_torch() -> None:
    probe = (
        "import sys\nfrom antlers.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('torch' in sys.modules, code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False 0"


def test_public_api_is_curated_and_sorted() -> None:
    assert antlers.__all__ == sorted(antlers.__all__)
    for name in antlers.__all__:
        assert getattr(antlers, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'moose'"):
        _ = antlers.moose  # type: ignore[attr-defined]


def test_lazy_names_resolve_to_the_real_functions() -> None:
    from antlers.anatomy import summary
    from antlers.nn.lecture import lecture_cnn

    assert antlers.summary is summary
    assert antlers.lecture_cnn is lecture_cnn
