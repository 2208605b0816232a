"""The forward pass's precision: autocast on CUDA (``amp``); on the CPU, bf16 or float32, forced
by ``cpu_amp`` or chosen by timing on the machine that trains, as cuDNN's benchmark mode picks a
convolution algorithm.

Choosing on the CPU (``cpu_amp`` unset, the default):

1. A CPU without native bf16 (AVX512-BF16 or AMX) trains in float32: oneDNN would emulate bf16
   at a fraction of float32's speed (docs/experiments/cpu-precision.md).
2. The answer remembered for this CPU, thread count, torch, model and input shape, if there is
   one (``precision.json`` in ``io.system.cache_root()``): a model's runs on one machine train
   alike.
3. Otherwise a copy of the model and a fresh optimizer train on the run's first batch:
   ``WARMUP`` float32 steps, then three timed. A median step under ``MIN_STEP_S`` stays
   float32: autocast's casts cost a fixed time per layer, which such small models do not earn
   back, and such short steps time noisily.
4. Else ``WARMUP`` bf16 steps, then ``ROUNDS`` alternating timed rounds in each precision,
   each of as many steps as fill ``ROUND_S`` seconds: bf16 wins when its median round is at
   least ``MARGIN`` shorter (within that, noise could decide, and float32 is the reference).
   The timing is remembered (step 3's too); the run's model, optimizer and random state are
   untouched.

The choice goes into the run's config.json, so a resumed run keeps it; rank 0 of a distributed
run times, the others follow. Evaluation and prediction stay float32.
"""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import json
import math
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.training import build_optimizer, to_device
from antlers.io.files import atomic_write
from antlers.io.system import cache_root, cpu_name

__all__ = ["autocast", "autocast_dtype", "choose_cpu_precision", "cpu_has_bf16"]

MIN_STEP_S = 0.02  # float32 steps shorter than this are not timed against bf16 (step 3)
WARMUP, ROUNDS, ROUND_S, MARGIN = 3, 5, 0.1, 0.1  # see steps 3 and 4 above
NO_BF16 = "this CPU has no native bf16 (AVX512-BF16 or AMX)"


def autocast_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    """The dtype the forward pass runs in under autocast, None for none: on CUDA with
    ``config.amp`` bf16 (fp16 where bf16 is unsupported); on the CPU with ``config.cpu_amp``
    (as ``choose_cpu_precision`` settled it) bf16 where the CPU has native bf16."""
    if device.type == "cuda" and config.amp:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_amp and cpu_has_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX)."""
    cpu = torch.cpu
    return any(
        getattr(cpu, name, lambda: False)()
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


@dataclass(frozen=True)
class Timing:
    """Median seconds of a training step in each precision (bf16 None: not timed, the float32
    step being too short), and the day they were measured."""

    float32: float
    bf16: float | None
    date: str

    @property
    def bf16_wins(self) -> bool:
        return self.bf16 is not None and self.bf16 <= (1 - MARGIN) * self.float32

    def said(self) -> str:
        ms = lambda s: f"{s * 1e3:.1f} ms"  # noqa: E731
        if self.bf16 is None:
            return f"a float32 step took {ms(self.float32)}, too short to gain from bf16"
        return f"a step took {ms(self.bf16)} in bf16, {ms(self.float32)} in float32"


def choose_cpu_precision(
    task: Any, config: TrainConfig, model: nn.Module, train: Any, info: dist.DistInfo, log: Any
) -> TrainConfig:
    """``config`` with ``cpu_amp`` settled (True: bf16 autocast) for a run on the CPU, after
    logging which precision trains and why; unchanged where ``cpu_amp`` was given. A step is
    ``task.loss(model, batch)["loss"]``'s forward and backward and an optimizer step of
    ``config``'s optimizer, on the first batch of ``train.epoch(0, 0)`` (a training loader)."""
    if config.cpu_amp is False:
        log("precision: float32 (--no-cpu-amp)")
        return config
    if not cpu_has_bf16():
        ignored = "; --cpu-amp has no effect" if config.cpu_amp else ""
        log(f"precision: float32 ({NO_BF16}{ignored})")
        return config if config.cpu_amp else config.replace(cpu_amp=False)
    if config.cpu_amp:
        log("precision: bf16 autocast (--cpu-amp)")
        return config
    choice, why = None, None
    if info.is_main:
        choice, why = _measured_choice(task, config, model, train)
    choice = dist.broadcast_object(choice, info)
    log(f"precision: {'bf16 autocast' if choice else 'float32'}: {why}")
    return config.replace(cpu_amp=choice)


def _measured_choice(task: Any, config: TrainConfig, model: nn.Module, train: Any) -> tuple:
    """(bf16 or not, why): steps 2-4 of the module docstring, on rank 0."""
    cpu, channels_last = torch.device("cpu"), config.channels_last
    batch = {k: to_device(v, cpu, channels_last) for k, v in _first_batch(train).items()}
    key = _key(config, model, batch["image"])
    path = cache_root() / "precision.json"
    known = _read_cache(path)
    if key in known:
        t = Timing(**known[key])
        return t.bf16_wins, f"{t.said()} (timed {t.date}; remembered in {path})"
    t = _time_steps(task, config, model, batch)
    known[key] = vars(t)
    try:
        atomic_write(path, json.dumps(known, indent=1, sort_keys=True) + "\n")
        kept = f"remembered in {path}"
    except OSError as error:  # an unwritable cache: this run is timed, the next one times again
        kept = f"not remembered: {error.strerror or error}: {path}"
    return t.bf16_wins, f"{t.said()} (timed now on the first batch; {kept})"


def _time_steps(task: Any, config: TrainConfig, model: nn.Module, batch: dict) -> Timing:
    """Steps 3 and 4 of the module docstring, on copies of the model: the random state is kept."""
    f32, bf16 = (_Trial(task, config, model, batch, dtype) for dtype in (None, torch.bfloat16))
    with torch.random.fork_rng(devices=[]):
        f32.steps(WARMUP)
        first = statistics.median(f32.steps(1) for _ in range(3))
        if first < MIN_STEP_S:
            return Timing(first, None, _today())
        bf16.steps(WARMUP)
        per_round = max(1, math.ceil(ROUND_S / first))  # rounds long enough to average noise
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(ROUNDS):
            for trial, seconds in zip((f32, bf16), times, strict=True):
                seconds.append(trial.steps(per_round))
    return Timing(statistics.median(times[0]), statistics.median(times[1]), _today())


class _Trial:
    """A copy of the model and a fresh optimizer that train on one batch in one precision."""

    def __init__(self, task: Any, config: TrainConfig, model: nn.Module, batch: dict, dtype: Any):
        self.task, self.batch, self.dtype = task, batch, dtype
        self.model = copy.deepcopy(model).train()
        self.optimizer = build_optimizer(self.model, config)

    def steps(self, n: int) -> float:
        """Seconds per step, over ``n`` steps."""
        start = time.perf_counter()
        for _ in range(n):
            with autocast(torch.device("cpu"), self.dtype):
                loss = self.task.loss(self.model, self.batch)["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return (time.perf_counter() - start) / n


def _first_batch(train: Any) -> dict[str, Any]:
    batches = train.epoch(0, 0)
    try:
        return next(iter(batches))
    finally:
        getattr(batches, "close", lambda: None)()  # a generator's loader workers stop now


def _key(config: TrainConfig, model: nn.Module, image: torch.Tensor) -> str:
    """What a step's speed depends on: the CPU, threads, torch, the model (its class, parameter
    count and a hash of its layers as printed), optimizer, input shape and memory layout."""
    params = sum(p.numel() for p in model.parameters())
    layers = hashlib.sha256(repr(model).encode()).hexdigest()[:12]
    layout = "channels_last" if config.channels_last else "contiguous"
    return (
        f"{cpu_name()} | {torch.get_num_threads()} threads | torch {torch.__version__} | "
        f"{type(model).__name__} {layers} ({params} parameters) | {config.optimizer} | "
        f"input {tuple(image.shape)} {layout}"
    )


def _read_cache(path: Path) -> dict[str, Any]:
    """The remembered timings; an unreadable file counts as empty, a malformed entry as absent
    (the file is rewritten after the next timing)."""
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in known.items() if _is_timing(v)} if isinstance(known, dict) else {}


def _is_timing(entry: Any) -> bool:
    number = lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0  # noqa: E731
    return (
        isinstance(entry, dict)
        and set(entry) == {"float32", "bf16", "date"}
        and number(entry["float32"])
        and (entry["bf16"] is None or number(entry["bf16"]))
        and isinstance(entry["date"], str)
    )


def _today() -> str:
    return datetime.date.today().isoformat()
