"""The DDPM and DDIM samplers against closed forms: single steps against the papers' equations,
and whole runs on Gaussian data, whose exact noise predictor is known.

For data x_0 ~ N(mu, s^2) and x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM eq. 4), the pair
(eps, x_t) is jointly Gaussian with Cov(eps, x_t) = sqrt(1 - abar_t) and
Var(x_t) = abar_t s^2 + 1 - abar_t, so the best (least-squares) noise predictor is linear:

    E[eps | x_t] = sqrt(1 - abar_t) (x_t - sqrt(abar_t) mu) / (abar_t s^2 + 1 - abar_t).

With it every sampler step is affine in x_t plus Gaussian noise, so the law of the samples is
N(m, v) with m, v computed exactly below in float64 from the papers' equations. The samplers
are finite discretisations (and DDPM uses the "fixed small" variance), so v is a little below
s^2; ``test_exact_sampler_laws_approach_the_data_as_steps_grow`` pins that gap.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from antlers.tasks.generate.sampling import (
    _ddim_step,
    _ddpm_step,
    _predict_x0,
    sample,
    sampling_timesteps,
)
from antlers.tasks.generate.schedule import NoiseSchedule, q_sample

MU, S = 0.1, 0.2  # data N(0.1, 0.2^2): [-1, 1] is 4.5 standard deviations away, clipping is moot


def gaussian_eps(
    schedule: NoiseSchedule, mu: float = MU, s: float = S
) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """The exact eps-predictor E[eps | x_t] for data N(mu, s^2), as the sampler calls a model."""
    abar = schedule.alphas_cumprod

    def model(x: Tensor, t: Tensor, labels: Tensor | None) -> Tensor:
        a = abar[t].view(-1, *([1] * (x.dim() - 1)))
        out = (1 - a).sqrt() * (x.double() - a.sqrt() * mu) / (a * s**2 + 1 - a)
        return out.to(x.dtype)

    return model


def step_coefficients(
    schedule: NoiseSchedule, sampler: str, t: int, t_prev: int, eta: float
) -> tuple[float, float, float]:
    """(p, q, sigma) with x_next = p x_t + q eps + sigma z, straight from the papers, float64.

    DDPM algorithm 2: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma z,
    sigma^2 = beta-tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (eq. 7); no noise at t = 0.
    DDIM eq. 12: x_prev = sqrt(abar_prev) (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    + sqrt(1 - abar_prev - sigma^2) eps + sigma z, sigma from eq. 16; abar_{-1} = 1.
    """
    abar = schedule.alphas_cumprod.tolist()
    a = abar[t]
    if sampler == "ddpm":
        beta = schedule.betas.tolist()[t]
        a_prev = abar[t - 1] if t > 0 else 1.0
        sigma = math.sqrt(beta * (1 - a_prev) / (1 - a)) if t > 0 else 0.0
        return 1 / math.sqrt(1 - beta), -beta / math.sqrt((1 - a) * (1 - beta)), sigma
    a_prev = abar[t_prev] if t_prev >= 0 else 1.0
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
    p = math.sqrt(a_prev / a)
    return p, math.sqrt(1 - a_prev - sigma**2) - p * math.sqrt(1 - a), sigma


def exact_law(
    schedule: NoiseSchedule, sampler: str, steps: int | None, eta: float
) -> tuple[float, float]:
    """Mean and variance of the samples when the model is ``gaussian_eps``: x_T ~ N(0, 1), then
    each step maps N(m, v) to N(A m + B, A^2 v + sigma^2), eps = k (x_t - sqrt(abar_t) mu)."""
    T = schedule.timesteps
    times = list(range(T - 1, -1, -1)) if sampler == "ddpm" else sampling_timesteps(T, steps)
    m, v = 0.0, 1.0
    for i, t in enumerate(times):
        a = float(schedule.alphas_cumprod[t])
        k = math.sqrt(1 - a) / (a * S**2 + 1 - a)
        t_prev = times[i + 1] if i + 1 < len(times) else -1
        p, q, sigma = step_coefficients(schedule, sampler, t, t_prev, eta)
        A, B = p + q * k, -q * k * math.sqrt(a) * MU
        m, v = A * m + B, A * A * v + sigma**2
    return m, v


def test_gaussian_eps_is_the_least_squares_noise_predictor() -> None:
    """The oracle itself: regressing the true noise on x_t gives its slope and intercept."""
    schedule, n = NoiseSchedule.make("linear", 1000), 200_000
    g = torch.Generator().manual_seed(0)
    for t_value in (10, 300, 900):
        x0 = MU + S * torch.randn(n, 1, 1, 1, generator=g, dtype=torch.float64)
        noise = torch.randn(n, 1, 1, 1, generator=g, dtype=torch.float64)
        t = torch.full((n,), t_value)
        xt = q_sample(schedule, x0, t, noise).flatten()
        predicted = gaussian_eps(schedule)(xt.view(-1, 1, 1, 1), t, None).flatten()
        residual = noise.flatten() - predicted
        # E[eps | x_t] leaves a residual with mean 0 that is uncorrelated with x_t; 4 standard
        # errors of each sample moment (residual sd / sqrt(n), times sd(x_t) for the product).
        se = float(residual.std()) / n**0.5
        assert abs(float(residual.mean())) < 4 * se
        centred = xt - xt.mean()
        assert abs(float((residual * centred).mean())) < 4 * se * float(xt.std())


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 1, 17, 500, 999])
def test_ddpm_step_is_algorithm_2(name: str, t: int) -> None:
    """Eq. 15's x_0 in eq. 7's posterior mean, plus sqrt(beta-tilde) z, equals algorithm 2."""
    schedule = NoiseSchedule.make(name, 1000)
    g = torch.Generator().manual_seed(t)
    x, eps = torch.randn(2, 8, 1, 3, 3, generator=g, dtype=torch.float64)
    out = _ddpm_step(x, eps, t, schedule, False, torch.Generator().manual_seed(7))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    p, q, sigma = step_coefficients(schedule, "ddpm", t, t - 1, 0.0)
    torch.testing.assert_close(out, p * x + q * eps + sigma * z, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("t", "t_prev"), [(999, 979), (999, 0), (500, 250), (20, -1)])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_is_equation_12(t: int, t_prev: int, eta: float) -> None:
    """DDIM eq. 12 with sigma from eq. 16, over jumps of many timesteps and the last step."""
    schedule = NoiseSchedule.make("cosine", 1000)
    g = torch.Generator().manual_seed(t)
    x, eps = torch.randn(2, 8, 1, 3, 3, generator=g, dtype=torch.float64)
    out = _ddim_step(x, eps, t, t_prev, schedule, eta, False, torch.Generator().manual_seed(7))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    p, q, sigma = step_coefficients(schedule, "ddim", t, t_prev, eta)
    torch.testing.assert_close(out, p * x + q * eps + sigma * z, rtol=1e-10, atol=1e-10)


def test_ddim_with_eta_one_on_adjacent_timesteps_is_the_ddpm_step() -> None:
    """Song et al. section 4.1: eta = 1 and tau = every timestep give DDPM's ancestral step."""
    schedule = NoiseSchedule.make("linear", 1000)
    x, eps = torch.randn(2, 8, 1, 3, 3, generator=torch.Generator().manual_seed(0)).double()
    for t in (999, 400, 1, 0):
        g1, g2 = torch.Generator().manual_seed(t), torch.Generator().manual_seed(t)
        ddim = _ddim_step(x, eps, t, t - 1, schedule, eta=1.0, clip=False, g=g1)
        ddpm = _ddpm_step(x, eps, t, schedule, clip=False, g=g2)
        torch.testing.assert_close(ddim, ddpm, rtol=1e-10, atol=1e-10)


def test_clipped_x0_keeps_x_t_decomposed_exactly() -> None:
    """With clip, x_0 is clamped to [-1, 1] and eps recomputed so that eq. 4 still gives x_t."""
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    eps = torch.zeros_like(x)  # x_0 = x_t / sqrt(abar): beyond [-1, 1] at both ends
    abar = 0.64
    x0, new_eps = _predict_x0(x, eps, abar, clip=True)
    torch.testing.assert_close(x0, (x / 0.8).clamp(-1, 1))
    torch.testing.assert_close(0.8 * x0 + 0.6 * new_eps, x)


@pytest.mark.parametrize(
    ("name", "sampler", "steps", "eta"),
    [
        ("linear", "ddpm", None, 0.0),
        ("cosine", "ddpm", None, 0.0),
        ("linear", "ddim", 50, 0.0),
        ("linear", "ddim", 50, 1.0),
        ("cosine", "ddim", 1000, 0.0),
        ("cosine", "ddim", 1000, 1.0),
    ],
)
def test_samples_of_gaussian_data_have_the_exact_mean_and_variance(
    name: str, sampler: str, steps: int | None, eta: float
) -> None:
    schedule, n = NoiseSchedule.make(name, 1000), 40_000
    run = sample(
        gaussian_eps(schedule),
        schedule,
        (n, 1, 1, 1),
        sampler=sampler,
        steps=steps,
        eta=eta,
        clip=False,
        frames=2,
        seed=1,
    )
    x = run.images.double().flatten() * 2 - 1  # back to the model's [-1, 1] scale
    m, v = exact_law(schedule, sampler, steps, eta)
    # 4 standard errors: of the mean, sqrt(v / n); of a Gaussian sample variance, v sqrt(2 / n)
    assert abs(float(x.mean()) - m) < 4 * (v / n) ** 0.5
    assert abs(float(x.var()) - v) < 4 * v * (2 / n) ** 0.5


def test_exact_sampler_laws_approach_the_data_as_steps_grow() -> None:
    """The reference itself targets N(mu, s^2): the mean to within x_T's tiny offset, the
    variance from below, the gap shrinking with the number of steps (a discretisation)."""
    linear, cosine = NoiseSchedule.make("linear", 1000), NoiseSchedule.make("cosine", 1000)
    for schedule in (linear, cosine):
        gaps = []
        for sampler, steps, eta in [
            ("ddim", 20, 0.0),
            ("ddim", 50, 0.0),
            ("ddim", 1000, 0.0),
            ("ddim", 1000, 1.0),
            ("ddpm", None, 0.0),
        ]:
            m, v = exact_law(schedule, sampler, steps, eta)
            assert abs(m - MU) < 1e-3  # x_T ~ N(0, 1), not N(sqrt(abar_T) mu, ...): ~ 1e-4
            gaps.append(1 - v / S**2)
        assert all(gap > 0 for gap in gaps)
        assert gaps[0] > gaps[1] > gaps[2]
        assert max(gaps[2:]) < 0.04  # 1000 steps: within 4% of s^2 (measured 0.7% to 3.7%)


def test_trajectory_runs_from_pure_noise_to_the_images() -> None:
    schedule = NoiseSchedule.make("cosine", 1000)
    run = sample(
        gaussian_eps(schedule), schedule, (2000, 1, 1, 1), sampler="ddim", steps=10, frames=4
    )
    assert run.trajectory_t[0] == 1000
    assert run.trajectory_t[-1] == 0
    assert run.trajectory.shape == (len(run.trajectory_t), 2000, 1, 1, 1)
    assert torch.equal(run.trajectory[-1], run.images)
    start = run.trajectory[0].double() * 2 - 1  # N(0, 1) clamped to [-1, 1]: sd about 0.7
    assert float(start.std()) > 0.6
    assert float(run.images.double().std() * 2) < 0.25  # the data's sd is 0.2
