"""`digits`: scikit-learn's bundled handwritten digits (1797 images of 8x8, classes "0".."9").

Offline (the data ships inside scikit-learn). Pixel values 0..16 are scaled to uint8 0..255
(round(v * 255 / 16)); images are (N, 1, 8, 8), or (N, 1, S, S) bilinear-resized when image_size
is given. There is no official split: a stratified 20 % of each class, chosen by `seed`, is the
test split.
"""

from __future__ import annotations

import numpy as np

from antlers.data.imageset import SPLITS, ImageSet, stratified_split_indices

__all__ = ["DIGIT_CLASSES", "TEST_FRACTION", "load_digits"]

DIGIT_CLASSES = tuple(str(d) for d in range(10))
TEST_FRACTION = 0.2


def load_digits(split: str = "train", *, image_size: int | None = None, seed: int = 0) -> ImageSet:
    """One split of the digits set as an ImageSet (about 1438 train / 359 test images)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    from sklearn.datasets import load_digits as sklearn_digits  # heavy import, only when used

    bunch = sklearn_digits()
    values = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), 0..16
    images = np.round(values * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = stratified_split_indices(labels, TEST_FRACTION, seed)
    chosen = train if split == "train" else test
    return ImageSet.from_arrays(images[chosen], labels[chosen], DIGIT_CLASSES, "digits", image_size)
