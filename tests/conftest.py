"""Shared test set-up: deterministic, and polite with the machine's two shared cores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# OpenMP threads that spin while waiting make 2-thread torch up to 10x slower than 1 thread when
# other work holds the shared cores; waiting passively removes that (read when torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """Use 2 intra-op threads at most: CI machines have 2 cores shared with other work."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
