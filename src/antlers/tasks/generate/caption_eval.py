"""How well a caption run draws what it is told: the judge's scores of its samples.

``judge_run`` draws one image per prompt (DDIM, ``steps`` steps, one seed) for a fixed,
seeded list of prompts, ``per_type`` of each prompt type, and scores them with
``judge.score_images``: in-distribution prompts and prompts naming a held-out colour-shape pair,
each at every guidance scale of ``GUIDANCES`` (the scale trades one for the other). The judge's
shape classifier is first checked on the renderer's own images (``judge.validate_shapes``, at
least 0.99).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from antlers.data.captions import PROMPT_TYPES, all_captions
from antlers.tasks.generate.captioned import prompt_tokens
from antlers.tasks.generate.judge import held_out_pair, score_images, validate_shapes

__all__ = ["DEFAULT_GUIDANCE", "GUIDANCES", "eval_prompts", "judge_run", "judge_text"]

GUIDANCES = (0.0, 1.0, 2.0, 4.0, 8.0)
DEFAULT_GUIDANCE = 4.0
MIN_SHAPE_ACCURACY = 0.99


def eval_prompts(held_out: bool, per_type: int, seed: int = 0) -> list[str]:
    """``per_type`` prompts of each type (drawn with replacement, seeded), either none naming a
    held-out pair (in-distribution) or each naming one (held out: the coloured types only)."""
    rng = np.random.default_rng([seed, 10 + held_out])
    prompts = []
    for kind in PROMPT_TYPES:
        pool = [str(c) for c in all_captions() if c.kind == kind and held_out_pair(c) == held_out]
        prompts += [pool[i] for i in rng.integers(0, len(pool), per_type)] if pool else []
    return prompts


def judge_run(
    task: Any,
    model: nn.Module,
    config: Any,
    *,
    per_type: int = 8,
    guidances: Sequence[float] = GUIDANCES,
    guidance: float = DEFAULT_GUIDANCE,
    steps: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """The judge's scores of a caption run (see the module docstring): ``in_distribution`` and
    ``held_out`` (per type, ``overall``, ``count``) at ``guidance``, ``by_guidance`` and
    ``held_out_by_guidance`` (overall per scale) and ``unconditional`` (guidance 0's, when
    swept)."""
    accuracy = validate_shapes(config.image_size[0])
    if accuracy < MIN_SHAPE_ACCURACY:
        raise RuntimeError(f"the judge's shape classifier scores {accuracy:.3f} on real renders")

    def scores(prompts: list[str], scale: float) -> dict[str, float]:
        tokens = prompt_tokens(config, len(prompts), prompts)
        images = task.sample(model, config, tokens, guidance=scale, steps=steps, seed=seed).images
        return score_images(images, prompts)

    scales = sorted({*guidances, guidance})
    prompts, held_prompts = eval_prompts(False, per_type, seed), eval_prompts(True, per_type, seed)
    sweep = {g: scores(prompts, g) for g in scales}
    held = {g: scores(held_prompts, g) for g in scales}
    return {
        "guidance": guidance,
        "steps": steps,
        "shape_accuracy_on_renders": accuracy,
        "in_distribution": sweep[guidance],
        "held_out": held[guidance],
        "by_guidance": {f"{g:g}": sweep[g]["overall"] for g in guidances},
        "held_out_by_guidance": {f"{g:g}": held[g]["overall"] for g in guidances},
        "unconditional": sweep.get(0.0, {}),
    }


def judge_text(result: dict[str, Any]) -> list[str]:
    """``judge_run``'s result as lines for the terminal."""
    lines = [f"judge: DDIM-{result['steps']}, guidance {result['guidance']:g}"]
    for split in ("in_distribution", "held_out"):
        scores = result[split]
        types = ", ".join(
            f"{k} {v:.2f}" for k, v in scores.items() if k not in ("overall", "count")
        )
        lines.append(
            f"  {split}: overall {scores['overall']:.3f} ({types}; {scores['count']} images)"
        )
    for key, split in (("by_guidance", "in-distribution"), ("held_out_by_guidance", "held-out")):
        sweep = ", ".join(f"{g}: {v:.3f}" for g, v in result[key].items())
        lines.append(f"  {split} overall by guidance: {sweep}")
    return lines
