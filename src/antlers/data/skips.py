"""The one policy for bad entries of a dataset on disk: skip and count, or refuse when strict.

A reader hands each problem it finds in one entry (an image file, a COCO image or annotation, a
YOLO label line, an image and its mask) to ``Skips.skip`` as one line naming the file, the entry
and the problem. By default the entry is left out and the line kept: the loader warns once with
the count and the first few entries (``Skips.warn``) and keeps every line in its set's
``skipped``. With ``strict=True`` (``antlers train --strict``, ``antlers convert --strict``) the
first problem raises ``DataError``, a ValueError whose message is that line. Problems that leave
nothing to read (malformed JSON, no classes, no readable entry at all) always raise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

__all__ = ["DataError", "Skips"]

SHOWN = 3  # entries named in the warning; the set's ``skipped`` holds them all


class DataError(ValueError):
    """A dataset entry that cannot be used; the message names the file, the entry, the problem."""


@dataclass
class Skips:
    """The problems found so far, as (entry, line) pairs; ``strict``: raise at the first."""

    strict: bool = False
    found: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, entry: str, line: str) -> None:
        """Leave ``entry`` out and keep ``line``; with ``strict``, raise DataError(line)."""
        if self.strict:
            raise DataError(line)
        self.found.append((entry, line))

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line for _, line in self.found)

    def warn(self, source: object, what: str, where: str) -> None:
        """One warning: how many ``what`` were skipped in ``source``, the first few entries,
        and ``where`` the full list is kept. Nothing when none was skipped."""
        if not self.found:
            return
        shown = ", ".join(entry for entry, _ in self.found[:SHOWN])
        more = ", ..." if len(self.found) > SHOWN else ""
        warnings.warn(
            f"{source}: skipped {len(self.found)} {what}: {shown}{more} "
            f"(full list in {where}; strict=True raises instead)",
            stacklevel=3,
        )
