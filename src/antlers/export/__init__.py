"""A trained run as an ONNX file, and that file run through onnxruntime (``antlers export``).

>>> exported = export_onnx(Run.load("runs/classify/exp"))        # doctest: +SKIP
>>> print(exported.parity)                                        # doctest: +SKIP
>>> OnnxRun("runs/classify/exp/weights/model.onnx").predict(images)  # doctest: +SKIP

``graphs.py`` says what each task's graph computes (the input and output convention),
``exporter.py`` writes the file, ``parity.py`` checks it against PyTorch, ``metadata.py`` is
what the file says about itself, ``runtime.py`` runs it. Needs the ``export`` extra (onnx,
onnxruntime, onnxscript).
"""

from antlers.export.exporter import DEFAULT_OPSET, Exported, ExportError, export_onnx
from antlers.export.runtime import OnnxRun

__all__ = ["DEFAULT_OPSET", "ExportError", "Exported", "OnnxRun", "export_onnx"]
