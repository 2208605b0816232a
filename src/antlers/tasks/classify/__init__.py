"""Image classification: one label per image (task.py, models.py, whitening.py, report.py)."""

from antlers.tasks.classify.models import MODELS, build_classifier, fast_resnet
from antlers.tasks.classify.task import ClassifyTask

__all__ = ["MODELS", "ClassifyTask", "build_classifier", "fast_resnet"]
