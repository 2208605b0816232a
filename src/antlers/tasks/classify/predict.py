"""What a classifier says about images: :class:`Classification`, the result of ``Run.predict``
(and, as JSON rows, of ``antlers predict``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Classification"]


@dataclass(frozen=True)
class Classification:
    """``probabilities`` (B, K), softmax over the ``classes`` (K names); ``indices`` (B,) the
    most likely class of each image."""

    probabilities: Tensor
    classes: tuple[str, ...]

    @property
    def indices(self) -> Tensor:
        return self.probabilities.argmax(dim=1)

    @property
    def labels(self) -> list[str]:
        """The most likely class's name, per image."""
        return [self.classes[int(i)] for i in self.indices]

    def __len__(self) -> int:
        return len(self.probabilities)

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per image, the ``k`` most likely (class name, probability), best first."""
        values, indices = self.probabilities.topk(min(k, len(self.classes)), dim=1)
        return [
            [(self.classes[int(i)], float(p)) for p, i in zip(v, idx, strict=True)]
            for v, idx in zip(values, indices, strict=True)
        ]

    def to_json(self, k: int = 3) -> list[dict[str, Any]]:
        """Per image {"label": best class, "top": [{"label", "probability"}, ...] (``k``)}."""
        return [
            {
                "label": best[0][0],
                "top": [{"label": c, "probability": round(p, 4)} for c, p in best],
            }
            for best in self.top(k)
        ]
