"""One source for every figure: each measured figure that README.md or a CLI help text states
is recorded in docs/benchmarks.md, where its command and machine are."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text()

# A decimal number, a percentage or a ratio such as 9.2x; integers alone are settings or counts.
FIGURE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:%|x\b)|\d+\.\d+)(?![\w.])")
# Settings that README states with a figure's shape, and why they are not measurements.
SETTINGS = {"10%": "the share of the training split held out for validation"}


def _figures(text: str) -> set[str]:
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code examples hold inputs, not results
    prose = re.sub(r"`[^`\n]*`", "", prose)  # so do inline commands and names
    prose = re.sub(r"^#.*$", "", prose, flags=re.M)  # headings name versions and topics
    return set(FIGURE.findall(prose)) - set(SETTINGS)


def _recorded(figure: str) -> bool:
    """The figure as docs/benchmarks.md writes it, or a percentage as its fraction there."""
    if re.search(rf"(?<![\w.]){re.escape(figure)}(?![\d])", BENCHMARKS):
        return True
    if figure.endswith("%") and "." in figure:
        fraction = f"{float(figure[:-1]) / 100:.{len(figure.split('.')[1]) + 2}f}"
        return fraction in BENCHMARKS
    return False


def test_every_figure_in_the_readme_is_recorded_in_the_benchmarks() -> None:
    missing = sorted(f for f in _figures((ROOT / "README.md").read_text()) if not _recorded(f))
    assert not missing, f"README states figures docs/benchmarks.md does not record: {missing}"


def test_the_check_catches_a_figure_that_is_not_recorded() -> None:
    assert _figures("reaches 93.47% in 41.3 s, 2.5x sooner; `--lr 0.3`") == {
        "93.47%",
        "41.3",
        "2.5x",
    }
    assert not _recorded("41.3")
    assert _recorded("24.47")
    assert _recorded("0.9361")


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    texts = [parser.description or ""]
    for action in parser._actions:
        texts.append(action.help or "")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                texts += _help_texts(sub)
    return texts


def test_cli_help_texts_state_no_measured_figure() -> None:
    from antlers.cli import build_parser

    ratios = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:%|x\b)")
    stated = {m for text in _help_texts(build_parser()) for m in ratios.findall(text)}
    assert all(_recorded(f) for f in stated), sorted(f for f in stated if not _recorded(f))
