"""The FLOP count of a training step against closed forms, and the run's summary line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import antlers
from antlers.engine.flops import step_flops, throughput_line


class MSETask:
    """A stand-in task: the loss is the mean squared output."""

    def loss(self, model: nn.Module, batch: dict) -> dict:
        return {"loss": model(batch["image"]).pow(2).mean()}


def test_linear_layers_count_two_flops_per_multiply_accumulate_forward_and_backward():
    """B x (12 -> 5 -> 3): forward 2B(12*5 + 5*3); backward: the second layer's weight and input
    gradients, 2B*5*3 each, and the first layer's weight gradient, 2B*12*5 (the images need no
    gradient)."""
    b = 4
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    forward = 2 * b * (12 * 5 + 5 * 3)
    backward = 2 * b * 5 * 3 * 2 + 2 * b * 12 * 5
    before = [p.detach().clone() for p in model.parameters()]
    assert step_flops(MSETask(), model, {"image": torch.rand(b, 3, 2, 2)}) == forward + backward
    assert all(p.grad is None for p in model.parameters())  # counted on a copy
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_convolution_counts_its_multiply_accumulates_and_leaves_batchnorm_alone():
    """Conv 3 -> 4, 3x3, padding 1 on 6x6: B*4*6*6*3*3*3 MACs forward, as many for the weight
    gradient; BatchNorm's running statistics of the model stay as they were."""
    b = 2
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    macs = b * 4 * 6 * 6 * 3 * 3 * 3
    flops = step_flops(MSETask(), model, {"image": torch.rand(b, 3, 6, 6)})
    assert flops == 2 * macs * 2
    assert torch.equal(model[1].running_mean, torch.zeros(4))


def test_throughput_line_states_images_per_second_and_gflops():
    assert throughput_line(1000, 2.0, 2e6) == (
        "1000 images in 2.0 s of training: 500 images/s, 1.0 GFLOP/s (forward and backward)"
    )
    assert throughput_line(10, 1.0, None) == "10 images in 1.0 s of training: 10 images/s"


def test_training_prints_the_summary_line(tmp_path, capsys: pytest.CaptureFixture[str]):
    antlers.train(
        "classify", data="digits", model="lecture_cnn", image_size=16, epochs=1, out=str(tmp_path)
    )
    assert " images/s, " in capsys.readouterr().out
