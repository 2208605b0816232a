"""Sampling: start from pure noise x_T and apply the noise-predicting network many times.

Two samplers over the same trained eps_theta (see ``diffusion_schedule`` for the conventions):

* ``ddpm``: ancestral sampling through all T steps (Ho et al. 2020, algorithm 2);
* ``ddim``: S << T steps of the non-Markovian process of Song, Meng, Ermon 2021 ("DDIM");
  eta = 0 is deterministic given x_T, eta = 1 matches DDPM's variance.

Both predict x_0 from eps (DDPM eq. 15), optionally clip it to [-1, 1] (as diffusers' schedulers
do by default), and then step. Classifier-free guidance (Ho & Salimans 2022, eq. 6):
eps = eps(x, t, null) + w (eps(x, t, y) - eps(x, t, null)); w = 0 is the unconditional model,
w = 1 the conditional one, w > 1 pushes samples towards their class. Everything random comes
from one ``torch.Generator`` seeded with ``seed``, so the same seed gives the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from antlers.tasks.generate.schedule import NoiseSchedule

__all__ = ["DEFAULT_ETA", "SAMPLERS", "Sample", "guided_eps", "sample", "sampling_timesteps"]

SAMPLERS = ("ddpm", "ddim")

# DDIM's default eta. eta = 0 (deterministic, Song et al.'s choice) is best for a well-trained
# model; a model trained for minutes on a CPU predicts the noise imperfectly, and eta = 1's fresh
# noise keeps correcting the drift that eta = 0 accumulates: a far lower FID, as low as DDPM's
# 1000 steps (docs/experiments/generate-samplers.md).
DEFAULT_ETA = 1.0

# eps_theta(x_t, t, labels or None) -> predicted noise, all (B, C, H, W); labels are class
# indices (B,) or caption token ids (B, L), -1 meaning "no condition"
EpsModel = Callable[[Tensor, Tensor, Tensor | None], Tensor]


@dataclass(frozen=True)
class Sample:
    """Samplers' output. images: (n, C, H, W) in [0, 1]; trajectory: (K, n, C, H, W) in [0, 1],
    the pure noise x_T (``trajectory_t[0]`` = T), then x after the steps at the timesteps
    ``trajectory_t[1:]``, the last being x_0 (after the step at t = 0)."""

    images: Tensor
    trajectory: Tensor
    trajectory_t: tuple[int, ...]


def guided_eps(
    model: EpsModel, x: Tensor, t: Tensor, labels: Tensor | None, guidance: float
) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6); one forward pass when w is 0 or 1
    or there are no labels, else the conditional and unconditional halves in one batch."""
    if labels is None or guidance == 0:
        return model(x, t, None)
    if guidance == 1:
        return model(x, t, labels)
    null = torch.full_like(labels, -1)  # -1: the model's null class
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
    cond, uncond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


def sampling_timesteps(timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, evenly spaced (DDIM section 4.2's sub-sequence
    tau, here including T-1 so the first step starts from pure noise)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in [1, {timesteps}], got {steps}")
    grid = torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long()
    return [int(t) for t in grid]


def _predict_x0(x: Tensor, eps: Tensor, abar: float, clip: bool) -> tuple[Tensor, Tensor]:
    """x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) (DDPM eq. 15, inverted eq. 4); when clipped,
    eps is recomputed from the clipped x_0 so both stay consistent (as diffusers' DDIM does)."""
    x0 = (x - (1 - abar) ** 0.5 * eps) / abar**0.5
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x - abar**0.5 * x0) / (1 - abar) ** 0.5
    return x0, eps


def _ddpm_step(
    x: Tensor, eps: Tensor, t: int, s: NoiseSchedule, clip: bool, g: torch.Generator
) -> Tensor:
    """One ancestral step x_t -> x_{t-1}: the posterior q(x_{t-1} | x_t, x_0) of DDPM eq. 6-7
    with the predicted x_0, variance beta-tilde_t (eq. 7; "fixed small"); no noise at t = 0."""
    abar = float(s.alphas_cumprod[t])
    abar_prev = float(s.alphas_cumprod[t - 1]) if t > 0 else 1.0
    beta, alpha = float(s.betas[t]), float(s.alphas[t])
    x0, _ = _predict_x0(x, eps, abar, clip)
    # eq. 7: mu-tilde = sqrt(abar_prev) beta / (1 - abar) x_0
    #                  + sqrt(alpha) (1 - abar_prev) / (1 - abar) x_t
    mean = (abar_prev**0.5 * beta / (1 - abar)) * x0 + (
        alpha**0.5 * (1 - abar_prev) / (1 - abar)
    ) * x
    if t == 0:
        return mean
    variance = beta * (1 - abar_prev) / (1 - abar)
    return mean + variance**0.5 * _noise(x, g)


def _ddim_step(
    x: Tensor, eps: Tensor, t: int, t_prev: int, s: NoiseSchedule, eta: float, clip: bool,
    g: torch.Generator,
) -> Tensor:  # fmt: skip
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021 eq. 12, sigma from eq. 16)."""
    abar = float(s.alphas_cumprod[t])
    abar_prev = float(s.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
    x0, eps = _predict_x0(x, eps, abar, clip)
    sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5
    direction = max(1 - abar_prev - sigma**2, 0.0) ** 0.5 * eps  # "direction pointing to x_t"
    out = abar_prev**0.5 * x0 + direction
    if sigma > 0:
        out = out + sigma * _noise(x, g)
    return out


def _step(
    sampler: str, x: Tensor, eps: Tensor, t: int, t_prev: int, s: NoiseSchedule, eta: float,
    clip: bool, g: torch.Generator,
) -> Tensor:  # fmt: skip
    """x_t -> the sampler's next x: DDPM's x_{t-1}, or DDIM's x_{t_prev} (-1: the last step)."""
    if sampler == "ddpm":
        return _ddpm_step(x, eps, t, s, clip, g)
    return _ddim_step(x, eps, t, t_prev, s, eta, clip, g)


def _noise(like: Tensor, g: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=g, dtype=like.dtype).to(like.device)


@torch.no_grad()
def sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: tuple[int, int, int, int],
    *,
    sampler: str = "ddim",
    steps: int | None = None,
    eta: float = DEFAULT_ETA,
    labels: Tensor | None = None,
    guidance: float = 1.0,
    seed: int = 0,
    clip: bool = True,
    frames: int = 10,
    device: torch.device | str = "cpu",
) -> Sample:
    """Draw ``shape[0]`` images from ``model`` (an eps-predictor, see ``EpsModel``).

    Recipe: (1) x_T ~ N(0, I) from the seeded generator (DDPM algorithm 2, line 1); (2) for each
    timestep t of the sampler's sequence, from T-1 down: eps = guided_eps(x_t, t, y) (Ho &
    Salimans eq. 6); x_0 from eps (DDPM eq. 15); (3) step: DDPM's posterior mean plus
    sqrt(beta-tilde_t) z (eq. 6-7; algorithm 2, line 4), or DDIM's eq. 12 to the next timestep
    of the sub-sequence; (4) map x_0 from [-1, 1] to [0, 1]. ``steps``: DDIM's S (default 50);
    DDPM always uses all T. ``frames``: how many x_t to keep for the trajectory.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if labels is not None and labels.shape[:1] != (shape[0],):
        raise ValueError(f"labels must have shape ({shape[0]}, ...), got {tuple(labels.shape)}")
    T = schedule.timesteps
    times = list(range(T - 1, -1, -1)) if sampler == "ddpm" else sampling_timesteps(T, steps or 50)
    g = torch.Generator().manual_seed(seed)
    x = _noise(torch.empty(shape, device=device), g)  # step 1
    if labels is not None:
        labels = labels.to(device)
    keep = {times[round(i * (len(times) - 1) / max(frames - 1, 1))] for i in range(frames)}
    trajectory, kept = [x], [T]
    for i, t in enumerate(times):  # step 2-3
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = guided_eps(model, x, t_batch, labels, guidance)
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        x = _step(sampler, x, eps, t, t_prev, schedule, eta, clip, g)
        if t in keep and t != times[0]:
            trajectory.append(x)
            kept.append(t)
    if kept[-1] != 0:
        trajectory.append(x)
        kept.append(0)
    to_unit = lambda v: ((v.float() + 1) / 2).clamp(0, 1).cpu()  # noqa: E731 - step 4
    return Sample(to_unit(x), torch.stack([to_unit(v) for v in trajectory]), tuple(kept))
