"""What an exported file says about itself: the ONNX ``metadata_props`` antlers writes and reads.

Every value is a string (ONNX's rule); lists and the model config are JSON:

* ``task``: classify, segment, detect or generate;
* ``classes``: the class names, a JSON list (index i is logit, label or class id i);
* ``input_size``: the model's input (C, H, W), a JSON list;
* ``antlers_version``: the version that exported it; ``exporter``: dynamo or torchscript;
* ``model_config``: the run's ModelConfig as JSON (``to_dict``), which rebuilds the task's own
  pre- and post-processing around the graph (``runtime.OnnxRun``).

Read them without antlers: ``onnxruntime.InferenceSession(f).get_modelmeta().custom_metadata_map``.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["KEYS", "antlers_version", "file_metadata"]

KEYS = ("task", "classes", "input_size", "antlers_version", "exporter", "model_config")


def antlers_version() -> str:
    """The installed antlers' version ("unknown" when run from a bare source tree)."""
    try:
        return version("antlers")
    except PackageNotFoundError:
        return "unknown"


def file_metadata(model_config: Any, exporter: str) -> dict[str, str]:
    """The ``metadata_props`` of a file exported from a run with ``model_config``."""
    c, (h, w) = model_config.in_channels, model_config.image_size
    return {
        "task": model_config.task,
        "classes": json.dumps(list(model_config.classes)),
        "input_size": json.dumps([c, h, w]),
        "antlers_version": antlers_version(),
        "exporter": exporter,
        "model_config": json.dumps(model_config.to_dict()),
    }
