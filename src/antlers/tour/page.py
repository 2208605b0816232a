"""The tour's page: what a chapter returns, and the HTML that holds them all.

One self-contained ``index.html`` with relative links to the chapter's PNG files; no JavaScript,
no network.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Chapter",
    "TourContext",
    "fashion_mnist_here",
    "figure",
    "page",
    "paragraph",
    "pre",
    "table",
]


@dataclass(frozen=True)
class TourContext:
    """What every chapter gets: the output folder, the quick flag and a progress logger."""

    out: Path
    quick: bool
    log: Callable[[str], None]


@dataclass(frozen=True)
class Chapter:
    """A finished chapter: its number, title, HTML body and a one-line summary for the terminal."""

    number: int
    title: str
    body: str
    summary: str


def fashion_mnist_here() -> bool:
    """Whether Fashion-MNIST's files are on this machine (Debian's dataset-fashion-mnist,
    $ANTLERS_DATA or ~/.cache/antlers): the tour never downloads it."""
    from antlers.data import DatasetNotFoundError, load_dataset

    try:
        load_dataset("fashion-mnist", "test", download=False)
    except DatasetNotFoundError:
        return False
    return True


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def figure(path: str, caption: str) -> str:
    """An <img> of a file in the tour folder (relative link) with a caption."""
    src, cap = html.escape(path), html.escape(caption)
    return f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def table(rows: Sequence[Mapping[str, object]], columns: Iterable[str] | None = None) -> str:
    """An HTML table of dict rows; columns default to the keys of the first row."""
    columns = list(columns or (rows[0].keys() if rows else []))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""


def page(chapters: Sequence[Chapter], quick: bool = False) -> str:
    """The whole tour as one HTML document."""
    nav = " ".join(
        f'<a href="#ch{c.number}">{c.number}. {html.escape(c.title)}</a>' for c in chapters
    )
    sections = "\n".join(
        f'<section id="ch{c.number}"><h2>{c.number}. {html.escape(c.title)}</h2>\n'
        f"{c.body}</section>"
        for c in chapters
    )
    mode = " (quick)" if quick else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>antlers tour</title><style>{_STYLE}</style></head><body>"
        f"<h1>antlers: the convolutional-network lecture, runnable{mode}</h1>"
        f"<nav>{nav}</nav>\n{sections}\n</body></html>\n"
    )
