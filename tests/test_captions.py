"""Text-conditioned diffusion on the captioned world: the grammar, the tokenizer, the judge, the
caption network's cross-attention, guidance, seeds and ``antlers sample --prompt``."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from antlers.cli import main
from antlers.data.captions import (
    COLOURS,
    HELD_OUT,
    HELD_OUT_VAL,
    MIX,
    PAIRS,
    UNNAMED,
    UNSEEN,
    VOCABULARY,
    Caption,
    Thing,
    all_captions,
    canonical,
    load_captions,
    parse_caption,
    render_captions,
    sample_captions,
)
from antlers.engine.checkpoint import save_weights
from antlers.run import Run
from antlers.tasks.generate.caption_eval import eval_prompts, judge_run
from antlers.tasks.generate.captioned import MAX_WORDS
from antlers.tasks.generate.judge import Found, judge, relative_position, validate_shapes
from antlers.tasks.generate.task import GenerateConfig, GenerateTask, build_unet
from antlers.tasks.generate.text import Tokenizer
from antlers.tasks.generate.unet import DiffusionUNet, UNetConfig

SWAP = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def caption_config(size: int = 24, model: str = "unet_tiny") -> GenerateConfig:
    return GenerateConfig(
        task="generate", model=model, data="captions", classes=(), in_channels=3,
        image_size=(size, size), vocabulary=VOCABULARY, max_words=MAX_WORDS,
    )  # fmt: skip


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` with every weight drawn at random (the zero-initialised output convs too, which
    would otherwise hide any dependence on the caption)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def test_every_caption_round_trips_through_text_parser_and_tokenizer():
    tokenizer = Tokenizer(VOCABULARY, MAX_WORDS)
    captions = all_captions()
    assert len({str(c) for c in captions}) == len(captions)
    for caption in captions:
        assert parse_caption(str(caption)) == caption
        assert tokenizer.decode(tokenizer.encode(str(caption))) == str(caption)
    assert {c.kind for c in captions} == {
        "single_object", "two_object", "counting", "colors", "position", "color_attr"
    }  # fmt: skip
    assert str(Caption("counting", (Thing("square", "yellow", 2),))) == "two yellow squares"


@pytest.mark.parametrize("text", ["a red", "two red circle", "a red circle and a red square",
                                  "a red circle above a red circle", "red circle"])  # fmt: skip
def test_ungrammatical_captions_are_refused(text):
    with pytest.raises(ValueError, match="not a caption of the grammar"):
        parse_caption(text)


def test_unknown_word_refused_with_one_line_listing_the_known_words():
    with pytest.raises(ValueError, match="unknown word") as error:
        Tokenizer(VOCABULARY, MAX_WORDS).encode("a purple circle")
    message = str(error.value)
    assert "'purple'" in message
    assert "\n" not in message
    assert all(word in message for word in VOCABULARY)
    assert Tokenizer(VOCABULARY, MAX_WORDS).encode("") == []  # the empty prompt: unconditional


def test_splits_are_seeded_and_training_never_shows_a_held_out_pair():
    assert not set(HELD_OUT) & set(HELD_OUT_VAL)
    assert {s for _, s in UNSEEN} == {"circle", "square", "triangle"}  # one colour per shape
    train = load_captions("train", 400, seed=3)
    assert torch.equal(train.images, load_captions("train", 400, seed=3).images)
    assert not torch.equal(train.images, load_captions("test", 400, seed=3).images)
    pixels = train.images.permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    from antlers.tasks.generate.judge import find_objects

    seen = {(o.colour, o.shape) for image in train.images.numpy() for o in find_objects(image)}
    assert seen.isdisjoint(UNSEEN)
    assert len({(c, s) for c, s in seen if c in COLOURS}) == 12 - len(UNSEEN)
    assert {c for c, _ in seen} == {*COLOURS, *UNNAMED}
    assert len(np.unique(pixels, axis=0)) == 1 + len(COLOURS) + len(UNNAMED)  # exactly these
    for split, pairs in PAIRS.items():
        held = load_captions(split, 100, seed=3)
        named = [{(t.colour, t.shape) for t in parse_caption(c).things} & set(UNSEEN)
                 for c in held.captions]  # fmt: skip
        assert all(n and n <= set(pairs) for n in named), split
        found = {(o.colour, o.shape) for image in held.images.numpy() for o in find_objects(image)}
        assert found & set(UNSEEN) == set(pairs), split  # no other split's unseen pair drawn


def test_prompt_types_are_drawn_with_the_odds_of_the_mix():
    n = 30000
    for held_out in (False, True):
        pairs = HELD_OUT if held_out else ()
        kinds = [c.kind for c in sample_captions(np.random.default_rng(0), n, pairs)]
        drawn = {k: w for k, w in MIX.items() if k in kinds}
        total = sum(drawn.values())
        for kind, weight in drawn.items():  # a share's standard error here is at most 0.003
            assert abs(kinds.count(kind) / n - weight / total) < 0.015, (held_out, kind)
        assert set(drawn) == ({"colors", "counting", "position", "color_attr"} if held_out
                              else set(MIX))  # fmt: skip


def test_judge_scores_real_renders_of_every_caption_as_right():
    captions = all_captions()
    images = render_captions(captions, 32, seed=1, pairs=UNSEEN).numpy()
    right = [judge(image, caption) for image, caption in zip(images, captions, strict=True)]
    assert np.mean(right) >= 0.99
    assert validate_shapes(32, per_pair=10) >= 0.99


def test_uncoloured_objects_take_every_colour_and_the_judge_finds_them():
    """A caption that names no colour is drawn in named and unnamed colours alike (never a
    held-out pair), and the judge reads those renders as their captions."""
    from antlers.tasks.generate.judge import find_objects

    captions = [c for c in all_captions() if c.kind in ("single_object", "two_object")] * 40
    images = render_captions(captions, 32, seed=4).numpy()
    found = [(o.colour, o.shape) for image in images for o in find_objects(image)]
    assert {c for c, _ in found} == {*COLOURS, *UNNAMED}
    assert {s for c, s in found if c in UNNAMED} == {"circle", "square", "triangle"}
    assert set(found).isdisjoint(UNSEEN)
    assert all(judge(image, c) for image, c in zip(images, captions, strict=True))


def wrong_captions(caption: Caption) -> list[Caption]:
    """Deliberately wrong descriptions: colours swapped, relation swapped, count changed."""
    wrong = []
    if caption.kind == "position":
        wrong.append(dataclasses.replace(caption, relation=SWAP[caption.relation]))
    if caption.kind in ("position", "color_attr") and len({t.colour for t in caption.things}) == 2:
        a, b = caption.things
        swapped = (dataclasses.replace(a, colour=b.colour), dataclasses.replace(b, colour=a.colour))
        wrong.append(dataclasses.replace(caption, things=swapped))
    if caption.kind == "counting":
        thing = caption.things[0]
        wrong.append(Caption("counting", (dataclasses.replace(thing, count=3 - thing.count),)))
    return wrong


def test_judge_scores_renders_of_wrong_captions_as_wrong():
    captions = [c for c in all_captions() if wrong_captions(c)]
    images = render_captions(captions, 32, seed=2, pairs=UNSEEN).numpy()
    judged = [judge(image, w) for image, c in zip(images, captions, strict=True)
              for w in wrong_captions(c)]  # fmt: skip
    assert len(judged) > 900
    assert not any(judged)


def test_canonical_relations_say_the_same_scene_by_the_judges_rule():
    captions = all_captions()
    images = render_captions(captions, 32, seed=4, pairs=UNSEEN).numpy()
    rewritten = [parse_caption(canonical(str(c))) for c in captions]
    assert {c.relation for c in rewritten} == {None, "left of", "above"}
    assert sum(c != r for c, r in zip(captions, rewritten, strict=True)) == sum(
        c.relation in ("right of", "below") for c in captions
    )
    # the judge, independent of the rewrite, reads each render as its rewritten caption too
    right = [judge(image, r) for image, r in zip(images, rewritten, strict=True)]
    assert np.mean(right) >= 0.99
    assert canonical("a red circle below a blue square") == "a blue square above a red circle"
    assert canonical("Two red circles") == "Two red circles"  # not a relation: unchanged
    assert canonical("red red below") == "red red below"  # outside the grammar: unchanged


def test_a_canonical_tokenizer_encodes_mirrored_relations_alike():
    plain = Tokenizer(VOCABULARY, MAX_WORDS)
    tokens = Tokenizer(VOCABULARY, MAX_WORDS, canonical=True)
    right, left = "a red circle right of a blue square", "a blue square left of a red circle"
    assert tokens.encode(right) == tokens.encode(left) == plain.encode(left)
    assert plain.encode(right) != plain.encode(left)  # a run saved before: encoded as written
    assert tokens.encode("a yellow triangle") == plain.encode("a yellow triangle")


def test_new_caption_runs_train_and_sample_canonically_and_older_runs_as_written(monkeypatch):
    from antlers.data import captions as captions_data
    from antlers.tasks import default_config
    from antlers.tasks.generate import captioned

    small = lambda split, **kw: captions_data.load_captions(split, n=64, **kw)  # noqa: E731
    monkeypatch.setattr(captioned, "load_captions", small)
    config = default_config("generate", data="captions")
    data = captioned.caption_data(GenerateTask(), config, "unet_tiny")
    assert data.model_config.canonical
    texts = small("train", image_size=32, seed=config.seed).captions
    assert any(parse_caption(c).relation in ("right of", "below") for c in texts)
    as_read = [canonical(c) for c in texts]
    assert torch.equal(data.train.labels, Tokenizer(VOCABULARY, MAX_WORDS).batch(as_read))
    right, left = "a red circle right of a blue square", "a blue square left of a red circle"
    new = captioned.prompt_tokens(data.model_config, 2, [right, left])
    assert torch.equal(new[0], new[1])

    saved = data.model_config.to_dict()
    del saved["canonical"]  # a caption run recorded before the rewrite existed
    older = GenerateConfig.from_dict(saved)
    assert not older.canonical
    old = captioned.prompt_tokens(older, 2, [right, left])
    assert not torch.equal(old[0], old[1])


def test_relative_position_follows_genevals_rule_in_image_coordinates():
    box = lambda x, y: Found("red", "circle", (x - 3, y - 3, x + 3, y + 3), 36)  # noqa: E731
    assert relative_position(box(5, 16), box(25, 16)) == {"left of"}
    assert relative_position(box(25, 16), box(5, 16)) == {"right of"}
    assert relative_position(box(16, 4), box(16, 26)) == {"above"}  # y grows downwards
    assert relative_position(box(5, 5), box(25, 25)) == {"left of", "above"}
    assert relative_position(box(16, 16), box(17, 16)) == set()  # within the size threshold


def test_cross_attention_depends_on_the_caption_and_not_on_padding():
    config = caption_config(24)
    model = randomized(build_unet(config))
    tokenizer = Tokenizer(VOCABULARY, MAX_WORDS)
    x, t = torch.randn(1, 3, 24, 24), torch.tensor([500])
    with torch.no_grad():
        red = model(x, t, tokenizer.batch(["a red circle"]))
        blue = model(x, t, tokenizer.batch(["a blue circle"]))
        short = model(x, t, tokenizer.batch(["a red circle"], length=3))
    assert (red - blue).abs().max() > 1e-3
    torch.testing.assert_close(short, red, atol=1e-5, rtol=1e-5)


def test_class_unet_has_no_cross_attention_so_class_weights_load_unchanged():
    keys = DiffusionUNet(UNetConfig()).state_dict().keys()
    assert not any("cross" in k or "context" in k for k in keys)


def test_guidance_zero_is_the_unconditional_model_and_the_empty_prompt():
    config, task = caption_config(24), GenerateTask()
    model = randomized(build_unet(config))
    prompt = task.prompt_tokens(config, 2, "a red circle above a blue square")
    empty = task.prompt_tokens(config, 2, "")
    draw = lambda tokens, g: task.sample(model, config, tokens, guidance=g, steps=3, seed=0).images  # noqa: E731
    torch.testing.assert_close(draw(prompt, 0.0), draw(empty, 1.0))
    assert (draw(prompt, 1.0) - draw(empty, 1.0)).abs().max() > 1e-3


@pytest.fixture(scope="module")
def caption_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised caption run's weights file (24 px, unet_tiny)."""
    config = caption_config(24)
    path = tmp_path_factory.mktemp("caption") / "caption.safetensors"
    return save_weights(randomized(build_unet(config)), path, config.to_dict())


def test_run_sample_with_a_prompt_same_seed_same_images(caption_weights: Path):
    run = Run.load(caption_weights)
    first = run.sample(3, steps=4, prompt="two red squares", seed=5)
    assert first.shape == (3, 3, 24, 24)
    assert torch.equal(first, run.sample(3, steps=4, prompt="two red squares", seed=5))
    assert not torch.equal(first, run.sample(3, steps=4, prompt="two red squares", seed=6))
    with pytest.raises(ValueError, match="known words"):
        run.sample(1, prompt="a purple circle")
    with pytest.raises(ValueError, match="prompt"):
        run.sample(1)  # a caption run has no classes


def test_cli_sample_prompt_writes_pngs_and_refuses_unknown_words(caption_weights, tmp_path, capsys):
    out = tmp_path / "out"
    prompt = ["--prompt", "a red circle left of a blue square", "--guidance", "4", "--seed", "0"]
    main(["sample", str(caption_weights), *prompt, "--n", "3", "--steps", "2", "--out", str(out)])
    folder = out / "a_red_circle_left_of_a_blue_square"
    assert sorted(p.name for p in folder.iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert (out / "grid.png").is_file()
    assert (out / "trajectory.png").is_file()
    capsys.readouterr()
    assert main(["sample", str(caption_weights), "--prompt", "a purple circle"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_judge_run_reports_in_distribution_held_out_and_guidance(caption_weights):
    run = Run.load(caption_weights)
    result = judge_run(run.task, run.model, run.model_config, per_type=1, guidances=(0, 4), steps=2)
    validation = result["validation_by_guidance"]
    mean = {float(g): (v["in_distribution"] + v["held_out"]) / 2 for g, v in validation.items()}
    assert result["guidance"] == max(mean, key=lambda g: (mean[g], -g))  # chosen on validation
    assert result["in_distribution"]["count"] == 6
    assert result["held_out"]["count"] == 4
    assert set(result["by_guidance"]) == set(result["held_out_by_guidance"]) == {"0", "4"}
    assert all(0 <= v <= 1 for v in result["by_guidance"].values())
    chosen = f"{result['guidance']:g}"
    assert result["held_out_by_guidance"][chosen] == result["held_out"]["overall"]
    assert result["by_guidance"][chosen] == result["in_distribution"]["overall"]
    prompts = {s: set(eval_prompts(s, 4)) for s in ("in_distribution", "held_out", "val_held_out")}
    assert not prompts["in_distribution"] & (prompts["held_out"] | prompts["val_held_out"])
    assert all("green square" in p for p in prompts["val_held_out"])
    with pytest.raises(ValueError, match="in_distribution, held_out"):
        eval_prompts("test", 1)


def test_overfitting_one_caption_image_pair_reproduces_it():
    """A caption network (a small one, 16 px) trained on one (caption, image) pair draws that
    image from noise when given the caption (DDIM-20), and its noise loss falls."""
    from antlers.tasks.generate.captioned import build_caption_unet

    config, task = caption_config(16), GenerateTask()
    caption = "a red circle left of a blue square"
    image = render_captions([parse_caption(caption)], size=16).float() / 255
    torch.manual_seed(0)
    model = build_caption_unet(config, UNetConfig(3, 16, channels=16, mults=(1, 2)))
    tokens, images = task.prompt_tokens(config, 8, caption), image.expand(8, -1, -1, -1)
    g = torch.Generator().manual_seed(0)
    fixed = torch.randint(0, 1000, (8,), generator=g), torch.randn((8, 3, 16, 16), generator=g)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(task.noise_loss(model, images, tokens, *fixed))

    before, untrained = fixed_loss(), task.sample(model.eval(), config, tokens[:2], steps=20).images
    optimizer = torch.optim.AdamW(model.train().parameters(), lr=5e-3)
    for _ in range(200):
        t, noise = torch.randint(0, 1000, (8,)), torch.randn_like(images)
        loss = task.noise_loss(model, images, tokens, t, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fixed_loss() < 0.25 * before
    made = task.sample(model.eval(), config, tokens[:2], guidance=1.0, steps=20, seed=0).images
    assert float((untrained - image).abs().mean()) > 0.2  # the premise: noise is far from it
    assert float((made - image).abs().mean()) < 0.07


def test_a_caption_run_takes_the_captioned_worlds_defaults_and_flags_win(monkeypatch):
    from types import SimpleNamespace

    from antlers.config import TrainConfig
    from antlers.tasks import default_config

    world = dict(GenerateTask.data_defaults["captions"])
    assert world  # the captioned world sets its own recipe
    caption = default_config("generate", data="captions")
    assert {k: getattr(caption, k) for k in world} == world
    plain = default_config("generate")  # Fashion-MNIST keeps the task's recipe
    assert plain == TrainConfig(task="generate", **GenerateTask.config_defaults)
    assert {k: getattr(plain, k) for k in world} != world
    assert default_config("generate", data="captions", batch_size=32).batch_size == 32

    seen = []
    stop = SimpleNamespace(stopped_by="max_steps", is_main=True, history=[])
    fit_module = importlib.import_module("antlers.engine.fit")  # the package re-exports fit
    monkeypatch.setattr(fit_module, "fit", lambda task, config, resume: seen.append(config) or stop)
    main(["train", "generate", "--data", "captions", "--batch-size", "32"])
    main(["train", "generate", "--data", "captions"])
    main(["train", "generate", "--data", "captions", "--model", "unet"])
    assert seen[0].batch_size == 32
    assert seen[0].warmup == world["warmup"]
    assert (seen[1].batch_size, seen[1].model) == (world["batch_size"], "unet_small")
    assert seen[2].model == "unet"
