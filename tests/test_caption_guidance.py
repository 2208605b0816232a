"""The guidance scale a caption run is judged at is chosen on validation prompts (and a
validation colour-shape pair), never on the test prompts or the held-out pairs."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from antlers.data.captions import UNSEEN, VOCABULARY, parse_caption, render_captions
from antlers.tasks.generate.caption_eval import PROMPT_SETS, eval_prompts, judge_run, judge_text
from antlers.tasks.generate.captioned import MAX_WORDS, prompt_tokens
from antlers.tasks.generate.task import GenerateConfig

CONFIG = GenerateConfig(
    task="generate", model="unet_tiny", data="captions", classes=(), in_channels=3,
    image_size=(32, 32), vocabulary=VOCABULARY, max_words=MAX_WORDS,
)  # fmt: skip


class Oracle:
    """A stand-in sampler that draws every prompt exactly (the renderer's image) at one scale
    per noise seed and a blank background at every other: ``right`` maps seed -> that scale."""

    def __init__(self, right: dict[int, float], per_type: int) -> None:
        self.right = right
        self.prompts: dict[tuple[int, ...], str] = {}
        for prompt_set in PROMPT_SETS:
            texts = eval_prompts(prompt_set, per_type)
            for text, tokens in zip(texts, prompt_tokens(CONFIG, len(texts), texts), strict=True):
                self.prompts[tuple(tokens.tolist())] = text

    def sample(self, model, config, tokens, *, guidance, steps, seed):
        captions = [parse_caption(self.prompts[tuple(t.tolist())]) for t in tokens]
        images = render_captions(captions, 32, seed, pairs=UNSEEN).float() / 255
        if guidance != self.right[seed]:
            images = torch.full_like(images, 128 / 255)  # nothing drawn
        return SimpleNamespace(images=images)


def test_the_scale_is_chosen_on_validation_not_on_the_test_prompts():
    # validation images (noise seed 1) are right at guidance 2, test images (seed 0) at 8
    result = judge_run(Oracle({1: 2.0, 0: 8.0}, 2), None, CONFIG, per_type=2, steps=1)
    assert result["guidance"] == 2.0
    assert result["validation_by_guidance"]["2"] == {"in_distribution": 1.0, "held_out": 1.0}
    assert result["validation_by_guidance"]["8"] == {"in_distribution": 0.0, "held_out": 0.0}
    assert result["in_distribution"]["overall"] == result["held_out"]["overall"] == 0.0
    assert result["by_guidance"]["8"] == result["held_out_by_guidance"]["8"] == 1.0
    text = judge_text(result)
    assert text[0] == "judge: DDIM-1, guidance 2 (chosen on validation)"
    assert "2: 1.000 / 1.000" in text[-1]
    assert text[-1].startswith("  validation (in distribution / held-out pair) by guidance")


def test_a_given_scale_is_used_as_given():
    result = judge_run(Oracle({1: 2.0, 0: 8.0}, 1), None, CONFIG, per_type=1, guidance=8, steps=1)
    assert result["guidance"] == 8
    assert "validation_by_guidance" not in result
    assert judge_text(result)[0] == "judge: DDIM-1, guidance 8"
    assert result["in_distribution"]["overall"] == result["held_out"]["overall"] == 1.0
