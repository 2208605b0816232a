"""``antlers export``: a run's graph (``graphs.py``) to an ONNX file, proven equal on another input.

Recipe: (1) the task's graph and an example input; (2) trace it: torch.export's exporter
(``dynamo=True``) for classify, segment and generate; the TorchScript exporter for the detector,
whose data-dependent box counts torch.export cannot trace and whose torchvision NMS and RoIAlign
the TorchScript exporter maps to ONNX's NonMaxSuppression and RoiAlign; (3) the dynamo exporter
writes opset 18 at least: a lower ``opset`` is reached with ONNX's version converter, which names
the operator it cannot convert; (4) the metadata (``metadata.py``) goes into ``metadata_props``
and the file is written atomically; (5) onnxruntime runs it on a new input and the task's
PyTorch code on the same one (``parity.py``).

Whatever the exporters or converter refuse ends in :class:`ExportError`, one line that names the
operator and the opset.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from antlers.export.graphs import GraphSpec, graph_spec
from antlers.export.metadata import file_metadata
from antlers.export.parity import Parity, check_parity

__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "Exported",
    "convert_opset",
    "export_onnx",
    "require_onnx",
]

DEFAULT_OPSET = 18  # the lowest the dynamo exporter writes itself
INSTALL = "pip install 'antlers[export]'"


class ExportError(ValueError):
    """An export that cannot be done: one line naming the file, operator and opset."""


@dataclass(frozen=True)
class Exported:
    """The file written, its size in bytes, the exporter and opset, and the parity measured."""

    path: Path
    size: int
    exporter: str
    opset: int
    parity: Parity


def require_onnx() -> None:
    """ExportError saying how to install onnx, onnxruntime and onnxscript if one is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ExportError(
            f"ONNX export needs onnx, onnxruntime and onnxscript ({error}): {INSTALL}"
        ) from None


def export_onnx(
    run: Any, out: str | Path | None = None, *, dynamic: bool = True, opset: int = DEFAULT_OPSET
) -> Exported:
    """Export ``run`` (a loaded ``Run``) to ``out`` (default: model.onnx beside its weights) and
    check it against PyTorch. ``dynamic``: the axes that ``graphs.py`` lists stay free."""
    require_onnx()
    import onnx
    import onnxruntime

    spec = graph_spec(run, dynamic)
    where = f"{run.weights_path}: ONNX opset {opset}"
    proto = _trace(spec, opset, where)
    if next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) != opset:
        proto = convert_opset(proto, opset, where)
    onnx.helper.set_model_props(proto, file_metadata(run.model_config, spec.exporter))
    path = Path(out) if out else run.weights_path.with_name("model.onnx")
    from antlers.io.files import atomic_write

    atomic_write(path, proto.SerializeToString())
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's errors derive from Exception alone
        raise ExportError(f"{where}: onnxruntime cannot load {path}: {_one_line(error)}") from None
    parity = check_parity(run, session)
    return Exported(path, path.stat().st_size, spec.exporter, opset, parity)


def _trace(spec: GraphSpec, opset: int, where: str) -> Any:
    """The ONNX ModelProto of ``spec`` from its exporter; refusals as ExportError."""
    import onnx
    import torch

    args = tuple(spec.example.values())
    names = {"input_names": list(spec.example), "output_names": list(spec.outputs)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' notes on tracing and deprecation
            if spec.exporter == "torchscript":
                buffer = io.BytesIO()
                with _silent_stdout():
                    torch.onnx.export(
                        spec.module, args, buffer, dynamo=False, opset_version=opset,
                        dynamic_axes=spec.dynamic, verbose=False, **names,
                    )  # fmt: skip
                return onnx.load_from_string(buffer.getvalue())
            program = torch.onnx.export(
                spec.module, args, dynamo=True, opset_version=max(opset, DEFAULT_OPSET),
                dynamic_shapes=_dynamic_shapes(spec), verbose=False, **names,
            )  # fmt: skip
            return program.model_proto
    except torch.onnx.OnnxExporterError as error:
        raise ExportError(f"{where}: {_one_line(error)}") from None


@contextlib.contextmanager
def _silent_stdout() -> Iterator[None]:
    """File descriptor 1 to /dev/null: the TorchScript exporter's C++ log prints the whole traced
    graph there when it fails (its verbose flag does not turn that log off)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _dynamic_shapes(spec: GraphSpec) -> tuple[dict[int, Any], ...]:
    """torch.export's dynamic shapes, one dict per input: one ``Dim`` per axis name (shared, so
    the generate graph's three inputs have one batch size)."""
    import torch

    dims: dict[str, Any] = {}
    return tuple(
        {
            axis: dims.setdefault(label, torch.export.Dim(label, min=1))
            for axis, label in spec.dynamic.get(name, {}).items()
        }
        for name in spec.example
    )


def convert_opset(proto: Any, opset: int, where: str = "model") -> Any:
    """``proto`` at ``opset`` through ONNX's version converter; an operator without a
    conversion: ExportError naming it."""
    from onnx import version_converter

    try:
        return version_converter.convert_version(proto, opset)
    except (RuntimeError, ValueError) as error:
        found = re.search(r"Version \$?(\d+) for (\w+)", str(error))
        if found is None:
            raise ExportError(f"{where}: {_one_line(error)}") from None
        since, op = found.groups()
        raise ExportError(
            f"{where}: operator {op} (its opset {since} form, as exported) has no conversion "
            f"to opset {opset}; use --opset {DEFAULT_OPSET} or higher"
        ) from None


def _one_line(error: BaseException) -> str:
    """The line of an exporter's message that says what failed, without the traced graph."""
    text = str(error)
    if "## Exception summary" in text:  # torch.export's report: the cause follows the heading
        text = text.split("## Exception summary", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line, _, cause = (lines[0] if lines else type(error).__name__).partition("[Caused by")
    line = line.strip()
    source = re.search(r"# \S*?((?:antlers|torchvision|torch)/\S+:\d+)", cause)
    if source:  # the TorchScript exporter's cause: a traced value, with the line that made it
        line += f" (traced at {source.group(1)})"
    return line if len(line) <= 300 else line[:297] + "..."
