"""Noise schedules and the forward process q(x_t | x_0) of a diffusion model, as pure functions.

Conventions (Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models", DDPM):
timesteps are 0-indexed, t = 0 .. T-1 (the paper's t = 1 .. T); ``betas[t]`` is the variance
added at step t, ``alphas = 1 - betas`` and ``alphas_cumprod[t] = prod_{s <= t} alphas[s]``
(the paper's alpha-bar). Images live in [-1, 1] (data in [0, 1] times 2 minus 1).

* ``linear``: betas rise linearly from 1e-4 to 0.02 over T = 1000 steps (DDPM section 4).
* ``cosine``: alpha-bar(t) = f(t) / f(0) with f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2),
  s = 0.008, betas clipped at 0.999 (Nichol & Dhariwal 2021, "Improved DDPM", eq. 17). It
  destroys information more slowly, which suits small images such as 28 x 28.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NOISE_SCHEDULES", "NoiseSchedule", "cosine_betas", "linear_betas", "q_sample"]

NOISE_SCHEDULES = ("linear", "cosine")


def linear_betas(timesteps: int = 1000, start: float = 1e-4, end: float = 0.02) -> Tensor:
    """DDPM's linear schedule, scaled so that T != 1000 keeps the same total noise: (T,) float64."""
    scale = 1000 / timesteps
    return torch.linspace(start * scale, end * scale, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Improved DDPM's cosine schedule (eq. 17): betas (T,) float64 from alpha-bar's ratios."""

    def f(t: float) -> float:
        return math.cos((t / timesteps + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f(t + 1) / f(t), max_beta) for t in range(timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


@dataclass(frozen=True)
class NoiseSchedule:
    """The per-step constants of one schedule, float64 tensors of shape (T,).

    ``NoiseSchedule.make("cosine", 1000)``; ``signal[t] = sqrt(alpha-bar_t)`` and
    ``noise[t] = sqrt(1 - alpha-bar_t)`` are the two factors of q_sample.
    """

    name: str
    betas: Tensor

    @classmethod
    def make(cls, name: str = "cosine", timesteps: int = 1000) -> NoiseSchedule:
        if name not in NOISE_SCHEDULES:
            raise ValueError(
                f"unknown noise schedule {name!r}; allowed: {', '.join(NOISE_SCHEDULES)}"
            )
        if timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {timesteps}")
        betas = linear_betas(timesteps) if name == "linear" else cosine_betas(timesteps)
        return cls(name, betas)

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> Tensor:
        return 1 - self.betas

    @property
    def alphas_cumprod(self) -> Tensor:
        return torch.cumprod(self.alphas, dim=0)

    @property
    def signal(self) -> Tensor:
        return self.alphas_cumprod.sqrt()

    @property
    def noise(self) -> Tensor:
        return (1 - self.alphas_cumprod).sqrt()


def _per_sample(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values[t] as float of ``like``'s dtype, shaped (B, 1, 1, 1) to broadcast over images."""
    picked = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return picked.view(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """The forward process in closed form (DDPM eq. 4): a sample of q(x_t | x_0).

    x_t = sqrt(alpha-bar_t) x_0 + sqrt(1 - alpha-bar_t) epsilon, with epsilon ~ N(0, I) given
    as ``noise``. x0, noise: (B, C, H, W) in the model's [-1, 1] scale; t: int64 (B,).
    """
    return _per_sample(schedule.signal, t, x0) * x0 + _per_sample(schedule.noise, t, x0) * noise


def min_snr_weights(schedule: NoiseSchedule, t: Tensor, gamma: float) -> Tensor:
    """Min-SNR-gamma loss weights for epsilon prediction (Hang et al. 2023, eq. 10 with the
    epsilon loss): w_t = min(SNR_t, gamma) / SNR_t, SNR_t = alpha-bar_t / (1 - alpha-bar_t).
    The nearly clean steps (high SNR), easy and many, weigh less; the noisy ones keep weight 1.
    t: int64 (B,); returns float32 (B,) on t's device."""
    abar = schedule.alphas_cumprod.to(t.device)[t]
    snr = abar / (1 - abar)
    return (snr.clamp(max=gamma) / snr).float()
