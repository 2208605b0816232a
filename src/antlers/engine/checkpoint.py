"""Checkpoints: weights as safetensors (never a pickle), the rest with ``weights_only=True``.

* ``weights/*.safetensors``: the model's tensors, plus metadata ``{"antlers": JSON}`` holding the
  task, the model config and the class names, so the file alone rebuilds the model.
* ``state/last.pt``: optimizer state, EMA, step, epoch, best metric, history — written with
  ``torch.save`` and read with ``torch.load(weights_only=True)``, which refuses any pickle that
  would run code; a file that is not torch.save's zip archive is refused before it is parsed.

Every write is atomic (:mod:`antlers.io.files`). Every unusable file, whatever its bytes (garbage,
truncated, a header that claims huge tensors), is one ``CheckpointError`` line naming the file.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from antlers.io.files import atomic_write

__all__ = [
    "CheckpointError",
    "load_matching",
    "load_state",
    "load_weights",
    "one_line",
    "save_state",
    "save_weights",
]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the reason."""


def save_weights(model: torch.nn.Module, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write the model's state dict as safetensors with ``meta`` (JSON) in the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = save_safetensors_bytes(tensors, metadata={"antlers": json.dumps(meta)})
    return atomic_write(path, payload)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(state_dict, meta)`` from a safetensors file written by :func:`save_weights`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: weights must be a .safetensors file (pickles are refused)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        problem = one_line(error)
        raise CheckpointError(f"{path}: not a valid safetensors file ({problem})") from error
    if "antlers" not in metadata:
        raise CheckpointError(f"{path}: no antlers metadata (task, model, classes) in the file")
    try:
        meta = json.loads(metadata["antlers"])
    except ValueError as error:
        raise CheckpointError(f"{path}: the antlers metadata is not JSON ({error})") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the antlers metadata is not a JSON object")
    return tensors, meta


def load_matching(model: torch.nn.Module, path: str | Path) -> tuple[int, list[str]]:
    """Initialise ``model`` from a plain safetensors state dict (e.g. torchvision weights).

    A file key ``k`` fills the model parameter or buffer named ``k`` or ending in ``.k`` (the
    model may wrap the network, e.g. behind a Normalize layer) when the shapes agree. Returns the
    number of tensors loaded and the file keys that were not (a new head's shape differs, say).
    """
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise CheckpointError(
            f"{path}: initial weights must be an existing .safetensors file "
            f"(pickled .pth files are refused)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError) as error:
        problem = one_line(error)
        raise CheckpointError(f"{path}: not a valid safetensors file ({problem})") from error
    state = model.state_dict()
    loaded, skipped = {}, []
    for key, tensor in tensors.items():
        target = next((k for k in state if k == key or k.endswith("." + key)), None)
        if target is not None and state[target].shape == tensor.shape:
            loaded[target] = tensor
        else:
            skipped.append(key)
    if not loaded:
        raise CheckpointError(f"{path}: no tensor matches the model's names and shapes")
    model.load_state_dict({**state, **loaded})
    return len(loaded), skipped


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Write the training state (tensors, numbers, strings, lists, dicts only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, buffer.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``: a pickle that would run code is refused,
    and so is anything that is not torch.save's zip archive holding a dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a training state (not the zip archive torch.save writes: damaged, "
            f"truncated or another format)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: this file is not a plain training state (it asks to run code "
            f"while loading; antlers only loads tensors and plain values)"
        ) from error
    except (RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise CheckpointError(
            f"{path}: cannot read the training state ({one_line(error)})"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training state (a {type(state).__name__})")
    return state


def one_line(error: BaseException, limit: int = 300) -> str:
    """``error``'s message on one line (torch's are often several), at most ``limit`` chars."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
