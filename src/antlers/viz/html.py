"""A run's report.html: its summary line, links to its files, a per-class table and its figures."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from antlers.io.files import atomic_write

__all__ = ["write_report_html"]


def write_report_html(
    run_dir: Path,
    summary: str,
    column: str,
    per_class: dict[str, str],
    figures: Sequence[str],
) -> Path:
    """``run_dir/report.html``: the ``summary`` line (HTML) with links to the run's files, a
    table of class -> ``column`` (values already formatted), and each of ``figures`` (PNG names
    without the suffix) that the run folder holds."""
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{v}</td></tr>" for c, v in per_class.items())
    images = "".join(
        f'<h2>{name}</h2><img src="{name}.png" style="max-width:100%">'
        for name in figures
        if (run_dir / f"{name}.png").exists()
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>antlers run</title></head>"
        f"<body style='font-family:sans-serif'><h1>{html.escape(str(run_dir))}</h1>"
        f"<p>{summary} · <a href='metrics.csv'>metrics.csv</a> · "
        "<a href='config.json'>config.json</a> · weights in <code>weights/</code></p>"
        f"<table border=1 cellpadding=4><tr><th>class</th><th>{html.escape(column)}</th></tr>"
        f"{rows}</table>{images}</body></html>"
    )
    return atomic_write(run_dir / "report.html", page)
