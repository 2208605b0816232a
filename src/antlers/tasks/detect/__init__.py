"""Object detection: propose boxes, classify each (possibly as nothing), suppress duplicates
(task.py, model.py, rpn.py, roi_heads.py, boxes.py, loader.py, metrics.py, report.py, ...)."""

from antlers.tasks.detect.model import DetectorConfig, TwoStageDetector
from antlers.tasks.detect.task import DetectTask

__all__ = ["DetectTask", "DetectorConfig", "TwoStageDetector"]
