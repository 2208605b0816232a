"""The FLOP count of a training step against closed forms, and the run's summary line."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import antlers
from antlers.engine.fit import fit
from antlers.engine.flops import counted, throughput_line
from antlers.tasks import default_config, get_task


def step_flops(model: nn.Module, images: torch.Tensor) -> int:
    """The FLOPs of a training step's forward and backward on a mean-squared-output loss."""
    return counted(lambda: model(images).pow(2).mean().backward())[1]


def test_linear_layers_count_two_flops_per_multiply_accumulate_forward_and_backward():
    """B x (12 -> 5 -> 3): forward 2B(12*5 + 5*3); backward: the second layer's weight and input
    gradients, 2B*5*3 each, and the first layer's weight gradient, 2B*12*5 (the images need no
    gradient)."""
    b = 4
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    forward = 2 * b * (12 * 5 + 5 * 3)
    backward = 2 * b * 5 * 3 * 2 + 2 * b * 12 * 5
    assert step_flops(model, torch.rand(b, 3, 2, 2)) == forward + backward


def test_convolution_counts_its_multiply_accumulates_and_leaves_batchnorm_alone():
    """Conv 3 -> 4, 3x3, padding 1 on 6x6: B*4*6*6*3*3*3 MACs forward, as many for the weight
    gradient; BatchNorm's element-wise arithmetic is not counted."""
    b = 2
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    macs = b * 4 * 6 * 6 * 3 * 3 * 3
    assert step_flops(model, torch.rand(b, 3, 6, 6)) == 2 * macs * 2


def test_throughput_line_states_images_per_second_and_gflops():
    assert throughput_line(1000, 2.0, 2e6) == (
        "1000 images in 2.0 s of training: 500 images/s, 1.0 GFLOP/s (forward and backward)"
    )
    assert throughput_line(10, 1.0, None) == "10 images in 1.0 s of training: 10 images/s"


def test_training_prints_the_summary_line_of_its_own_counted_step(
    tmp_path, capsys: pytest.CaptureFixture[str]
):
    """The run's GFLOP/s come from its first step, counted: the same count as that step's
    forward and backward counted here on the same model and batch size."""
    run = antlers.train(
        "classify", data="digits", model="lecture_cnn", image_size=16, epochs=1, batch_size=32,
        out=str(tmp_path),
    )  # fmt: skip
    line = next(x for x in capsys.readouterr().out.splitlines() if " images/s, " in x)
    rate, gflops = (float(v) for v in re.findall(r"[\d.]+", line)[2:4])
    model = run.model.train()
    task = run.task
    batch = {"image": torch.rand(32, 1, 16, 16), "label": torch.zeros(32, dtype=torch.long)}
    expected = counted(lambda: task.loss(model, batch)["loss"].backward())[1] / 32
    assert gflops == pytest.approx(rate * expected / 1e9, rel=0.02, abs=0.05)


def test_fit_result_carries_the_summary_lines_throughput(tmp_path):
    """What the summary line prints, the result holds: benchmarks read it there, not from text."""
    lines: list[str] = []
    config = default_config(
        "classify", data="digits", model="lecture_cnn", image_size=16, max_steps=3,
        batch_size=32, out=str(tmp_path),
    )  # fmt: skip
    result = fit(get_task("classify"), config, log=lambda *a, **_: lines.append(" ".join(a)))
    line = next(x for x in lines if " images/s, " in x)
    rate, gflops = (float(v) for v in re.findall(r"[\d.]+", line)[2:4])
    assert result.images_per_s == pytest.approx(rate, abs=0.5)
    assert result.gflop_per_s == pytest.approx(gflops, abs=0.05)
    assert result.gflop_per_s > 0
