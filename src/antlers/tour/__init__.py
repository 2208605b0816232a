"""The main job: the lecture, chapter by chapter, into ``runs/tour/index.html``.

Each chapter is a function ``(TourContext) -> Chapter`` listed in the explicit dict ``CHAPTERS``;
it writes its figures into the tour folder and returns HTML and a one-line summary. ``run_tour``
runs the chosen chapters, prints progress, writes ``index.html`` atomically and returns its path.
Later chapters (classification, what CNNs learn, segmentation, detection, generation) plug in
the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from antlers.io.files import atomic_write
from antlers.tour.backprop import backprop_chapter
from antlers.tour.classify import classify_chapter
from antlers.tour.cnn import cnn_chapter
from antlers.tour.convolution import convolution_chapter
from antlers.tour.detect import detect_chapter
from antlers.tour.explain import explain_chapter
from antlers.tour.generate import generate_chapter
from antlers.tour.page import Chapter, TourContext, page
from antlers.tour.segment import segment_chapter

__all__ = ["CHAPTERS", "Chapter", "TourContext", "TourResult", "run_tour"]

CHAPTERS: dict[int, Callable[[TourContext], Chapter]] = {
    1: convolution_chapter,
    2: cnn_chapter,
    3: backprop_chapter,
    4: classify_chapter,
    5: explain_chapter,
    6: segment_chapter,
    7: detect_chapter,
    8: generate_chapter,
}


@dataclass(frozen=True)
class TourResult:
    """What a tour produced: the page, and each chapter's summary line and duration."""

    index: Path
    chapters: tuple[Chapter, ...]
    seconds: float


def run_tour(
    out: str | Path = "runs/tour",
    quick: bool = False,
    chapters: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
) -> TourResult:
    """Run the tour's ``chapters`` (all by default) and write ``out/index.html``.

    ``quick`` shrinks every chapter's work (smaller photos, fewer epochs) to fit in well under
    two minutes on two cores. ``log`` receives progress lines.
    """
    numbers = sorted(CHAPTERS) if chapters is None else list(chapters)
    unknown = [n for n in numbers if n not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapter {unknown[0]}; chapters are {sorted(CHAPTERS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    context = TourContext(out=out, quick=quick, log=log)
    start = time.perf_counter()
    done = []
    for position, number in enumerate(numbers, 1):
        log(f"[{position}/{len(numbers)}] chapter {number} ...")
        t0 = time.perf_counter()
        chapter = CHAPTERS[number](context)
        done.append(chapter)
        seconds = time.perf_counter() - t0
        log(f"[{position}/{len(numbers)}] {chapter.title}: {chapter.summary} ({seconds:.1f} s)")
    index = atomic_write(out / "index.html", page(done, quick=quick))
    return TourResult(index=index, chapters=tuple(done), seconds=time.perf_counter() - start)
