"""The runs a server shows, addressed by id, each loaded on its first use.

``find_runs(paths)``: run folders (those with ``weights/``) and ``.safetensors`` files; a folder
without weights is searched below for run folders (default: ``./runs``). The listing comes from
each weights file's metadata (read with safetensors, no torch); the model is loaded once, by
the first request that needs it, under a lock. Besides the runs, the lecture's two untrained
networks (``lecture_cnn`` on 3x50x70, ``alexnet`` on 3x227x227) are there for the layer tables.

Every computation on a loaded model holds that model's lock: explain's hooks (feature maps,
Grad-CAM) would otherwise see the forward passes of other requests running at the same time.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from antlers.serve.security import ApiError

__all__ = ["LECTURE_CLASSES", "LECTURE_MODELS", "Loaded", "RunEntry", "Runs", "find_runs"]

LECTURE_MODELS = {"lecture_cnn": (3, 50, 70), "alexnet": (3, 227, 227)}
# antlers.nn.lecture.LECTURE_CLASSES, written here because importing that module imports torch
# (the listing must not: the server starts without it); a test checks that the two agree.
LECTURE_CLASSES = ("CAR", "TRUCK", "VAN", "BICYCLE")
WEIGHTS = ("best", "last")


@dataclass(frozen=True)
class RunEntry:
    """One servable model: ``id`` (in URLs), ``path`` (a run folder or weights file; None for
    an untrained lecture network) and the public description ``info`` (GET /api/runs)."""

    id: str
    path: Path | None
    info: dict[str, Any]


@dataclass
class Loaded:
    """A loaded model: ``run`` (an ``antlers.Run``; None for a lecture network), the ``model``
    and the ``lock`` every computation on it holds."""

    run: Any
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def _weights_of(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".safetensors":
        return path
    return next(
        (w for n in WEIGHTS if (w := path / "weights" / f"{n}.safetensors").is_file()), None
    )


def _folders(path: Path) -> list[Path]:
    """``path`` if it is a run folder or weights file, else the run folders below it, sorted."""
    if _weights_of(path) is not None:
        return [path]
    if not path.is_dir():
        return []
    return sorted({w.parent.parent for w in path.rglob("weights/*.safetensors")})


def _metadata(weights: Path) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            return json.loads((f.metadata() or {})["antlers"])
    except Exception as error:  # any unusable file: one line naming it
        raise ValueError(f"{weights}: not an antlers weights file ({error})") from None


def _entry(run_id: str, path: Path) -> RunEntry:
    meta = _metadata(_weights_of(path))  # type: ignore[arg-type]
    channels = int(meta["in_channels"])
    height, width = (int(v) for v in meta["image_size"])
    info = {
        "id": run_id,
        "task": meta["task"],
        "classes": list(meta.get("classes") or []),
        "model": meta["model"],
        "input": {"channels": channels, "height": height, "width": width},
        "trained": True,
    }
    return RunEntry(run_id, path, info)


def _lecture_entry(name: str, shape: tuple[int, int, int]) -> RunEntry:
    classes = (
        list(LECTURE_CLASSES) if name == "lecture_cnn" else [f"class {i}" for i in range(1000)]
    )
    c, h, w = shape
    info = {
        "id": name,
        "task": "classify",
        "classes": classes,
        "model": name,
        "input": {"channels": c, "height": h, "width": w},
        "trained": False,
    }
    return RunEntry(name, None, info)


def _slug(path: Path) -> str:
    parts = path.parts[-2:] if path.is_dir() else (path.parent.parent.name, path.stem)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(p for p in parts if p)).strip("-") or "run"


def find_runs(paths: list[str | Path], lecture: bool = True) -> list[RunEntry]:
    """The entries for ``paths`` (run folders, weights files, folders of runs), ids made
    unique (``classify-exp``, ``classify-exp-2``), then the lecture networks when ``lecture``."""
    entries: list[RunEntry] = []
    taken: set[str] = set(LECTURE_MODELS) if lecture else set()
    for given in paths:
        for folder in _folders(Path(given)):
            base = _slug(folder)
            run_id, n = base, 1
            while run_id in taken:
                n += 1
                run_id = f"{base}-{n}"
            taken.add(run_id)
            entries.append(_entry(run_id, folder))
    if lecture:
        entries += [_lecture_entry(name, shape) for name, shape in LECTURE_MODELS.items()]
    return entries


class Runs:
    """The server's entries by id; ``get(id)`` loads a model on first use (thread-safe)."""

    def __init__(self, entries: list[RunEntry]) -> None:
        self.entries = {e.id: e for e in entries}
        self._loaded: dict[str, Loaded] = {}
        self._lock = threading.Lock()

    def entry(self, run_id: str) -> RunEntry:
        """The entry ``run_id``; ApiError 404 naming the known ids otherwise."""
        if run_id not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise ApiError(404, f"no run {run_id!r}; known runs: {known}")
        return self.entries[run_id]

    def get(self, run_id: str, task: str | None = None, trained: bool = True) -> Loaded:
        """The loaded model ``run_id``: ApiError 404 unknown; 422 when it is not of ``task``
        or (``trained``) is an untrained lecture network."""
        entry = self.entry(run_id)
        if task is not None and entry.info["task"] != task:
            raise ApiError(422, f"{run_id} is a {entry.info['task']!r} run, this needs {task!r}")
        if trained and entry.path is None:
            raise ApiError(422, f"{run_id} is the untrained lecture network: only its layers")
        with self._lock:
            if run_id not in self._loaded:
                self._loaded[run_id] = _load(entry)
            return self._loaded[run_id]


def _load(entry: RunEntry) -> Loaded:
    if entry.path is None:
        from antlers.nn.lecture import build_model

        shape = LECTURE_MODELS[entry.id]
        return Loaded(None, build_model(entry.id, shape).eval())
    from antlers.run import Run

    run = Run.load(entry.path)
    return Loaded(run, run.model)
