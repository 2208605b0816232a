"""Segmentation models and metrics: shapes at odd sizes, SegNet's unpooling, every parameter
learns, one batch can be overfit, and the metrics agree with torchmetrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from antlers.engine.metrics import confusion_matrix
from antlers.tasks import get_task
from antlers.tasks.segment.metrics import metrics_from_confusion
from antlers.tasks.segment.models import (
    DoubleConv,
    ResidualDoubleConv,
    SegmentConfig,
    SegNet,
    UNet,
    build_segmenter,
    parse_segmenter_name,
)
from antlers.tasks.segment.task import SegmentTask, dice_loss


def _config(model: str, channels: int = 3, classes: Sequence[str] | int = 5) -> SegmentConfig:
    names = [f"c{i}" for i in range(classes)] if isinstance(classes, int) else classes
    return SegmentConfig(
        task="segment",
        model=model,
        data="test",
        in_channels=channels,
        classes=tuple(names),
        image_size=(32, 32),
    )


@pytest.mark.parametrize(
    ("model", "channels", "h", "w"),
    [
        ("unet", 3, 32, 32),
        ("unet", 1, 33, 47),  # not divisible by 2**3: padded and cropped back
        ("unet-w4-d1", 3, 7, 5),
        ("unet-w4-d4", 3, 50, 70),  # the lecture's 3x50x70 input
        ("unet-w4-d2-plain", 3, 50, 70),
        ("segnet", 3, 32, 32),
        ("segnet", 1, 33, 47),
        ("segnet-w4-d2", 3, 9, 13),
        ("segnet-w4-d5", 3, 50, 70),
        ("lraspp", 3, 45, 61),
    ],
)
def test_logits_have_the_input_size(model: str, channels: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    net = build_segmenter(_config(model, channels)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, channels, h, w))
    assert out.shape == (2, 5, h, w)
    assert torch.isfinite(out).all()


def test_model_names_parse_and_bad_names_list_the_allowed() -> None:
    assert parse_segmenter_name("unet-w32-d4") == (
        "unet",
        {"width": 32, "depth": 4, "residual": True},
    )
    assert parse_segmenter_name("unet-plain") == (
        "unet",
        {"width": 16, "depth": 3, "residual": False},
    )
    assert parse_segmenter_name("segnet-d2") == ("segnet", {"width": 8, "depth": 2})
    with pytest.raises(ValueError, match="allowed: unet, segnet, lraspp"):
        parse_segmenter_name("fcn")
    with pytest.raises(ValueError, match="depth must be 1 to 6"):
        parse_segmenter_name("unet-d9")
    with pytest.raises(ValueError, match="-plain is a U-Net option"):
        parse_segmenter_name("segnet-plain")
    with pytest.raises(ValueError, match="lraspp has no"):
        parse_segmenter_name("lraspp-plain")


def test_unet_width_and_depth_set_the_architecture() -> None:
    small, big = UNet(3, 4, width=4, depth=1), UNet(3, 4, width=8, depth=3, residual=False)
    assert len(small.downs) == 1
    assert len(big.downs) == 3
    assert big.downs[-1][1][0].out_channels == 64  # width doubles per stage: 8 -> 64
    assert isinstance(small.stem, ResidualDoubleConv)
    assert isinstance(big.stem, DoubleConv)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(big) > 10 * count(small)


def test_residual_block_adds_its_input_back_before_the_last_relu() -> None:
    torch.manual_seed(0)
    same, wider = ResidualDoubleConv(4, 4).eval(), ResidualDoubleConv(4, 6).eval()
    x = torch.randn(2, 4, 5, 7)
    with torch.no_grad():
        body = same.body(x)
        torch.testing.assert_close(same(x), torch.relu(body + x))
        assert (body < 0).any()  # the body ends before a ReLU: negative values reach the sum
        plain = DoubleConv(4, 4).eval()
        plain.load_state_dict({k.removeprefix("body."): v for k, v in same.state_dict().items()})
        assert not torch.allclose(same(x), plain(x))  # ... the addition changes the output
        shortcut = wider.shortcut[1](wider.shortcut[0](x))  # 1x1 conv + BN: 4 -> 6 channels
        torch.testing.assert_close(wider(x), torch.relu(wider.body(x) + shortcut))


def test_segnet_decoder_puts_values_back_where_the_maxima_were() -> None:
    # With identity-like stages, unpooling must place each maximum at its pooled position.
    net = SegNet(1, 2, width=1, depth=1)
    x = torch.rand(1, 1, 4, 4)
    pooled, indices = net.pool(x)
    restored = net.unpool(pooled, indices, output_size=x.shape[-2:])
    assert ((restored == x) | (restored == 0)).all()
    assert (restored != 0).sum() == 4  # one value per 2x2 window
    for i in range(2):
        for j in range(2):
            window = x[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            kept = restored[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            assert kept.max() == window.max()


@pytest.mark.parametrize("model", ["unet-w4-d2", "unet-w4-d2-plain", "segnet-w4-d2", "lraspp"])
def test_every_parameter_gets_a_gradient(model: str) -> None:
    torch.manual_seed(0)
    task = SegmentTask(dice=0.5)
    net = task.build_model(_config(model)).train()
    batch = {"image": torch.rand(2, 3, 32, 32), "mask": torch.randint(0, 5, (2, 32, 32))}
    batch["mask"][0, :4] = 255  # ignored pixels
    out = task.loss(net, batch)
    assert torch.isfinite(out["loss"])
    assert set(out) == {"loss", "ce", "dice"}
    out["loss"].backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model", ["unet-w8-d2", "segnet-w8-d2"])
def test_overfit_one_batch(model: str) -> None:
    from antlers.data.street_scenes import load_street_scenes

    torch.manual_seed(0)
    data = load_street_scenes("train", image_size=32, n=6)
    task = get_task("segment")
    net = task.build_model(_config(model, classes=data.classes))
    batch = {"image": data.images.float() / 255, "mask": data.masks.long()}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    # 200 steps: at 120, SegNet's eval-mode accuracy was still climbing and its value hung on
    # the host's kernels (0.936 / 0.949 with 1 / 2 threads on one host); at 200, 0.99 or more.
    for _ in range(200):
        out = task.loss(net.train(), batch)  # cross-entropy + Dice, the task's default
        loss = out["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predicted = task.probabilities(net, batch["image"]).argmax(1)
    assert out["ce"].item() < 0.15
    assert (predicted == batch["mask"]).float().mean() > 0.95  # eval mode: BN running stats


def test_ignored_pixels_are_left_out_of_the_loss() -> None:
    torch.manual_seed(0)
    task = SegmentTask(dice=0.0)
    net = task.build_model(_config("unet-w4-d1")).eval()
    image = torch.rand(1, 3, 8, 8)
    mask = torch.randint(0, 5, (1, 8, 8))
    mask[0, :3] = 255
    other = mask.clone()
    other[0, :3] = torch.randint(0, 5, (3, 8))  # what the ignored pixels hold cannot matter ...
    with torch.no_grad():
        logits = net(image)
        a = task.loss(net, {"image": image, "mask": mask})["loss"]
        kept = mask[0] != 255
        by_hand = torch.nn.functional.cross_entropy(logits[0][:, kept].T, mask[0][kept])
        b = task.loss(net, {"image": image, "mask": other})["loss"]
    torch.testing.assert_close(a, by_hand)
    assert a != b  # ... but labelling them does change the loss


def test_dice_loss_is_zero_for_a_perfect_prediction_and_one_for_the_opposite() -> None:
    target = torch.randint(0, 3, (2, 6, 6))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, target).item() < 1e-3
    wrong = torch.nn.functional.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(wrong, target).item() > 0.95  # 1 but for the +1 smoothing


def _dice_loss_by_loops(logits: torch.Tensor, target: torch.Tensor, ignore: int = 255) -> float:
    """Soft Dice (Milletari et al. 2016, eq. 1 with the +1 smoothing), pixel by pixel, class by
    class: D_c = (2 sum p_c t_c + 1) / (sum p_c + sum t_c + 1) over the batch's non-ignored
    pixels, p = softmax over classes, t = one-hot target; the loss is 1 - mean_c D_c."""
    b, k, h, w = logits.shape
    pixels = [(n, y, x) for n in range(b) for y in range(h) for x in range(w)]
    dice = []
    for c in range(k):
        overlap = predicted = truth = 0.0
        for n, y, x in pixels:
            label = int(target[n, y, x])
            if label == ignore:
                continue
            exps = [math.exp(float(logits[n, j, y, x])) for j in range(k)]
            p = exps[c] / sum(exps)
            overlap += p * (label == c)
            predicted += p
            truth += label == c
        dice.append((2 * overlap + 1) / (predicted + truth + 1))
    return 1 - sum(dice) / k


def test_dice_loss_equals_the_per_class_loops() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 6), generator=g)  # class 3 never a target: D_3 = 1/(P+1)
    target[0, :2] = 255
    target[1, :, 4:] = 255
    # float32 softmax and sums over 38 pixels inside dice_loss: agreement to 1e-6
    assert dice_loss(logits, target).item() == pytest.approx(
        _dice_loss_by_loops(logits, target), abs=1e-6
    )


def test_metrics_match_torchmetrics_over_several_batches() -> None:
    torch.manual_seed(0)
    k = 6
    jaccard = MulticlassJaccardIndex(k, average="none", ignore_index=255)
    macro = MulticlassJaccardIndex(k, average="macro", ignore_index=255)
    confusion = MulticlassConfusionMatrix(k, ignore_index=255)
    accuracy = MulticlassAccuracy(k, average="micro", ignore_index=255)
    total = torch.zeros(k, k, dtype=torch.long)
    for _ in range(3):
        target = torch.randint(0, k, (4, 16, 20))
        target[target == 5] = 255  # class 5 never in the targets: only predicted
        predicted = torch.where(
            torch.rand(4, 16, 20) < 0.6, target, torch.randint(0, k, (4, 16, 20))
        )
        predicted[predicted == 255] = 2
        total += confusion_matrix(predicted, target, k, ignore_index=255)
        for metric in (jaccard, macro, confusion, accuracy):
            metric.update(predicted, target)
    scores = metrics_from_confusion(total)
    assert torch.equal(total, confusion.compute())
    torch.testing.assert_close(
        torch.tensor(scores["iou"], dtype=torch.float64),
        jaccard.compute().double(),
        atol=1e-6,
        rtol=0,
    )
    assert scores["miou"] == pytest.approx(float(macro.compute()), abs=1e-6)
    assert scores["pixel_accuracy"] == pytest.approx(float(accuracy.compute()), abs=1e-6)


def test_a_class_that_never_occurs_has_no_iou_and_is_left_out_of_the_mean() -> None:
    target = torch.tensor([[0, 0, 1, 1]])
    predicted = torch.tensor([[0, 1, 1, 1]])
    scores = metrics_from_confusion(confusion_matrix(predicted, target, 3))
    assert scores["iou"][:2] == pytest.approx([0.5, 2 / 3])
    assert scores["iou"][2] != scores["iou"][2]  # NaN
    assert scores["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(0.75)
