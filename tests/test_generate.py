"""Diffusion: schedules, the forward process, guidance, the U-Net and FID (the samplers' oracles:
test_generate_sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from antlers.tasks.generate.quality import frechet_distance
from antlers.tasks.generate.sampling import guided_eps, sample, sampling_timesteps
from antlers.tasks.generate.schedule import NoiseSchedule, min_snr_weights, q_sample
from antlers.tasks.generate.unet import DiffusionUNet, UNetConfig


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alphas_cumprod_strictly_decreasing_in_open_unit_interval(name):
    abar = NoiseSchedule.make(name, 1000).alphas_cumprod
    assert abar.dtype == torch.float64
    assert abar.shape == (1000,)
    assert bool((abar > 0).all())
    assert bool((abar < 1).all())
    assert bool((abar[1:] < abar[:-1]).all())


def test_schedule_golden_values_from_the_papers_formulas():
    # Ho et al. 2020: betas linear from 1e-4 to 0.02, T = 1000 (NumPy, float64, independent)
    betas = np.linspace(1e-4, 0.02, 1000)
    expected = np.cumprod(1 - betas)
    linear = NoiseSchedule.make("linear", 1000).alphas_cumprod.numpy()
    np.testing.assert_allclose(linear, expected, rtol=1e-12)
    assert linear[-1] == pytest.approx(4.0358e-05, rel=1e-3)  # the value diffusers' docs quote
    # Nichol & Dhariwal 2021 eq. 17: alpha-bar(t) = f(t) / f(0) while no beta is clipped
    t = np.arange(1, 1001) / 1000
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    cosine = NoiseSchedule.make("cosine", 1000).alphas_cumprod.numpy()
    np.testing.assert_allclose(cosine[:990], f[:990], rtol=1e-9)
    assert float(NoiseSchedule.make("cosine", 1000).betas.max()) == pytest.approx(0.999)


def test_unknown_schedule_lists_the_allowed():
    with pytest.raises(ValueError, match="linear, cosine"):
        NoiseSchedule.make("sigmoid")


def test_q_sample_mean_and_variance_match_the_closed_form():
    schedule = NoiseSchedule.make("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20_000, 1, 2, 2), 0.6)
    t = torch.full((20_000,), 300)
    xt = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=g))
    abar = float(schedule.alphas_cumprod[300])
    n = xt.numel()
    assert float(xt.mean()) == pytest.approx(abar**0.5 * 0.6, abs=4 * (1 - abar) ** 0.5 / n**0.5)
    assert float(xt.var()) == pytest.approx(1 - abar, rel=4 * (2 / n) ** 0.5)


def test_ddim_timesteps_start_at_pure_noise_and_end_at_zero():
    assert sampling_timesteps(1000, 5) == [999, 749, 500, 250, 0]
    with pytest.raises(ValueError, match="steps"):
        sampling_timesteps(1000, 0)


def _tiny_unet(classes: int = 3, channels: int = 1) -> DiffusionUNet:
    torch.manual_seed(0)
    config = UNetConfig(
        in_channels=channels, image_size=8, num_classes=classes, channels=16, mults=(1, 2)
    )
    model = DiffusionUNet(config)
    for name, p in model.named_parameters():  # zero-initialised layers would hide conditioning
        if not p.any():
            torch.nn.init.normal_(p, std=0.02 if "weight" in name else 0.0)
    return model.eval()


def test_unet_shapes_gradients_and_conditioning():
    model = _tiny_unet().train()
    x = torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    out = model(x, t, torch.tensor([0, 1, 2, -1]))
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        a, b = model(x, t, torch.zeros(4, dtype=torch.long)), model(x, t, torch.ones(4).long())
        null, none = model(x, t, torch.full((4,), -1)), model(x, t, None)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(null, none)


def test_unet_patch_and_size_check():
    config = UNetConfig(in_channels=3, image_size=8, num_classes=2, channels=16, patch=2)
    model = DiffusionUNet(config)
    assert model(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        UNetConfig(image_size=10, mults=(1, 2), patch=2)


def test_seeded_sampling_is_deterministic():
    model, schedule = _tiny_unet(), NoiseSchedule.make("cosine", 20)
    labels = torch.tensor([0, 1])
    run = lambda seed, **kw: sample(model, schedule, (2, 1, 8, 8), labels=labels, seed=seed, **kw)  # noqa: E731
    for options in ({"sampler": "ddim", "steps": 5, "eta": 1.0}, {"sampler": "ddpm"}):
        first, again, other = run(3, **options), run(3, **options), run(4, **options)
        assert torch.equal(first.images, again.images)
        assert torch.equal(first.trajectory, again.trajectory)
        assert not torch.equal(first.images, other.images)


def test_guidance_zero_and_one_reduce_to_the_unconditional_and_conditional_model():
    model, schedule = _tiny_unet(), NoiseSchedule.make("cosine", 100)
    labels = torch.tensor([0, 2, 1])
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 99])
    with torch.no_grad():
        cond, uncond = model(x, t, labels), model(x, t, None)
        torch.testing.assert_close(guided_eps(model, x, t, labels, 0.0), uncond)
        torch.testing.assert_close(guided_eps(model, x, t, labels, 1.0), cond)
        torch.testing.assert_close(
            guided_eps(model, x, t, labels, 3.0), uncond + 3 * (cond - uncond), atol=1e-5, rtol=0
        )

    def conditional_only(x, t, _):
        return model(x, t, labels)

    options = {"sampler": "ddim", "steps": 8, "seed": 5}
    shape = (3, 1, 8, 8)
    w0 = sample(model, schedule, shape, labels=labels, guidance=0.0, **options).images
    plain = sample(model, schedule, shape, labels=None, **options).images
    w1 = sample(model, schedule, shape, labels=labels, guidance=1.0, **options).images
    cond_only = sample(conditional_only, schedule, shape, labels=None, **options).images
    torch.testing.assert_close(w0, plain)
    torch.testing.assert_close(w1, cond_only)
    w3 = sample(model, schedule, shape, labels=labels, guidance=3.0, **options).images
    assert not torch.allclose(w3, w1)


def test_overfit_one_image():
    from antlers.tasks.generate.task import GenerateConfig, GenerateTask

    task = GenerateTask()
    config = GenerateConfig(
        task="generate",
        model="unet_tiny",
        data="test",
        in_channels=1,
        image_size=(8, 8),
        classes=("a", "b"),
        noise_schedule="cosine",
        timesteps=1000,
    )
    torch.manual_seed(0)
    model = task.build_model(config)
    image = torch.zeros(1, 1, 8, 8)
    image[..., 2:6, 3:5] = 1.0
    g = torch.Generator().manual_seed(0)
    fixed_t = torch.randint(0, 1000, (32,), generator=g)
    fixed_noise = torch.randn((32, 1, 8, 8), generator=g)
    images, labels = image.expand(32, -1, -1, -1), torch.zeros(32, dtype=torch.long)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(task.noise_loss(model, images, labels, fixed_t, fixed_noise))

    before = fixed_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = task.loss(model, {"image": images, "label": labels})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_loss()
    assert after < 0.25 * before, (before, after)
    model.eval()
    made = task.sample(model, config, torch.zeros(4, dtype=torch.long), steps=50).images
    assert float((made - image).abs().mean()) < 0.15


def test_frechet_distance_matches_scipy_sqrtm():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 5, generator=g, dtype=torch.float64)
    b = torch.randn(200, 5, generator=g, dtype=torch.float64) @ torch.rand(
        5, 5, generator=g, dtype=torch.float64
    )
    b = b + 0.5
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy().T), np.cov(b.numpy().T)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="features"):
        frechet_distance(a, b[:, :3])


def test_frechet_distance_matches_torchmetrics_fid_with_a_custom_feature_module():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        num_features = 6

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.linear = torch.nn.Linear(16, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x.float().flatten(1))

    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(80, 1, 4, 4, generator=g), torch.rand(60, 1, 4, 4, generator=g) ** 2
    features = Features()
    fid = FrechetInceptionDistance(feature=features, normalize=True)  # offline: no Inception
    fid.update(real, real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        ours = frechet_distance(features(fake), features(real))
    assert ours == pytest.approx(float(fid.compute()), rel=1e-3)
    assert ours > 0.01


def test_every_entry_point_uses_the_same_default_eta() -> None:
    """The CLI, Run.sample and sample() share DDIM's default eta (1: measured best for short
    training, docs/benchmarks.md), so the documented default is what every path draws with."""
    import inspect

    from antlers.cli import build_parser
    from antlers.run import Run
    from antlers.tasks.generate.sampling import DEFAULT_ETA, sample

    assert inspect.signature(sample).parameters["eta"].default == DEFAULT_ETA
    assert inspect.signature(Run.sample).parameters["eta"].default == DEFAULT_ETA
    args = build_parser().parse_args(["sample", "some_run"])
    assert args.eta == DEFAULT_ETA


class _Halve(torch.nn.Module):
    """A stand-in denoiser: eps_theta(x_t, t, y) = x_t / 2."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: object) -> torch.Tensor:
        return x / 2


def test_min_snr_weights_each_image_by_its_clamped_signal_to_noise_ratio():
    from antlers.tasks import default_config
    from antlers.tasks.generate.task import GenerateTask

    schedule = NoiseSchedule.make("cosine", 1000)
    t = torch.tensor([0, 5, 40, 300, 700, 999])
    expected = []
    for step in t.tolist():  # alpha-bar as the product of (1 - beta), one step at a time
        abar = float(np.prod([1 - b for b in schedule.betas[: step + 1].tolist()]))
        snr = abar / (1 - abar)
        expected.append(min(snr, 5.0) / snr)
    weights = min_snr_weights(schedule, t, 5.0)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-5)
    assert weights[0] < 0.01  # the clean end damped
    assert weights[-1] == 1.0  # the noisy end kept

    torch.manual_seed(0)
    images, noise = torch.rand(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    weighted = GenerateTask(min_snr=5.0).noise_loss(_Halve(), images, None, t, noise)
    x_t = q_sample(schedule, images * 2 - 1, t, noise)
    per_image = ((x_t / 2 - noise) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(weighted, (weights * per_image).mean())
    plain = GenerateTask().noise_loss(_Halve(), images, None, t, noise)
    torch.testing.assert_close(plain, per_image.mean())
    caption_task = GenerateTask().configure(default_config("generate", data="captions"))
    assert caption_task.min_snr == 5.0
    assert GenerateTask().configure(default_config("generate")).min_snr is None
