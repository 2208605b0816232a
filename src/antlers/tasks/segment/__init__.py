"""Semantic segmentation: one class per pixel (task.py, models.py, loader.py, metrics.py,
predict.py, report.py)."""

from antlers.tasks.segment.models import MODELS, SegNet, UNet, build_segmenter
from antlers.tasks.segment.task import SegmentTask

__all__ = ["MODELS", "SegNet", "SegmentTask", "UNet", "build_segmenter"]
