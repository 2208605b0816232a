"""How well a caption run draws what it is told: the judge's scores of its samples.

``judge_run`` draws one image per prompt (DDIM, ``steps`` steps) for fixed, seeded lists of
prompts, ``per_type`` of each prompt type, and scores them with ``judge.score_images``:
in-distribution prompts and prompts naming a held-out colour-shape pair, each at every guidance
scale of ``GUIDANCES`` (the scale trades one for the other). The scale the headline figures are
read at is chosen on validation, never on the held-out split: validation prompts (in
distribution, other prompts and other noise) and prompts naming ``HELD_OUT_VAL``, a pair no
training image shows either; the scale with the best mean of the two overall scores wins (the
smaller on a tie; runs trained before 2026-12-07 saw that pair in training). The judge's shape
classifier is first checked on the renderer's own images
(``judge.validate_shapes``, at least 0.99).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from antlers.data.captions import HELD_OUT, HELD_OUT_VAL, PROMPT_TYPES, captions_naming
from antlers.tasks.generate.captioned import prompt_tokens
from antlers.tasks.generate.judge import score_images, validate_shapes

__all__ = ["GUIDANCES", "PROMPT_SETS", "eval_prompts", "judge_run", "judge_text"]

GUIDANCES = (0.0, 1.0, 2.0, 4.0, 8.0)
MIN_SHAPE_ACCURACY = 0.99
# prompt set -> (the unseen pairs its prompts name, random stream); the first two are the test
PROMPT_SETS = {
    "in_distribution": ((), 10),
    "held_out": (HELD_OUT, 11),
    "val_in_distribution": ((), 12),
    "val_held_out": (HELD_OUT_VAL, 13),
}


def eval_prompts(prompt_set: str, per_type: int, seed: int = 0) -> list[str]:
    """``per_type`` prompts of each type (drawn with replacement, seeded) of ``PROMPT_SETS``'
    ``prompt_set``: none naming an unseen pair (in distribution), or each naming one of the
    set's pairs (the coloured types only)."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"prompt_set must be one of {', '.join(PROMPT_SETS)}, got {prompt_set!r}")
    pairs, stream = PROMPT_SETS[prompt_set]
    rng = np.random.default_rng([seed, stream])
    captions = captions_naming(pairs)
    prompts = []
    for kind in PROMPT_TYPES:
        pool = [str(c) for c in captions if c.kind == kind]
        prompts += [pool[i] for i in rng.integers(0, len(pool), per_type)] if pool else []
    return prompts


def judge_run(
    task: Any,
    model: nn.Module,
    config: Any,
    *,
    per_type: int = 8,
    guidances: Sequence[float] = GUIDANCES,
    guidance: float | None = None,
    steps: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """The judge's scores of a caption run (see the module docstring): ``in_distribution`` and
    ``held_out`` (per type, ``overall``, ``count``) at ``guidance`` (None: chosen on
    validation among ``guidances``, reported in ``validation_by_guidance``), ``by_guidance`` and
    ``held_out_by_guidance`` (overall per scale) and ``unconditional`` (guidance 0's, when
    swept). Validation images are drawn with noise seed ``seed + 1``."""
    accuracy = validate_shapes(config.image_size[0])
    if accuracy < MIN_SHAPE_ACCURACY:
        raise RuntimeError(f"the judge's shape classifier scores {accuracy:.3f} on real renders")

    def sweep(prompt_set: str, scales: Sequence[float], noise: int) -> dict[float, dict]:
        prompts = eval_prompts(prompt_set, per_type, seed)
        tokens = prompt_tokens(config, len(prompts), prompts)
        return {
            g: score_images(
                task.sample(model, config, tokens, guidance=g, steps=steps, seed=noise).images,
                prompts,
            )
            for g in scales
        }

    result: dict[str, Any] = {"steps": steps, "shape_accuracy_on_renders": accuracy}
    if guidance is None:
        val = sweep("val_in_distribution", guidances, seed + 1)
        val_held = sweep("val_held_out", guidances, seed + 1)
        mean = {g: (val[g]["overall"] + val_held[g]["overall"]) / 2 for g in guidances}
        guidance = max(guidances, key=lambda g: (mean[g], -g))
        result["validation_by_guidance"] = {
            f"{g:g}": {"in_distribution": val[g]["overall"], "held_out": val_held[g]["overall"]}
            for g in guidances
        }
    scales = sorted({*guidances, guidance})
    inside, held = sweep("in_distribution", scales, seed), sweep("held_out", scales, seed)
    return result | {
        "guidance": guidance,
        "in_distribution": inside[guidance],
        "held_out": held[guidance],
        "by_guidance": {f"{g:g}": inside[g]["overall"] for g in guidances},
        "held_out_by_guidance": {f"{g:g}": held[g]["overall"] for g in guidances},
        "unconditional": inside.get(0.0, {}),
    }


def judge_text(result: dict[str, Any]) -> list[str]:
    """``judge_run``'s result as lines for the terminal."""
    chosen = " (chosen on validation)" if "validation_by_guidance" in result else ""
    lines = [f"judge: DDIM-{result['steps']}, guidance {result['guidance']:g}{chosen}"]
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
    if "validation_by_guidance" in result:
        sweep = ", ".join(
            f"{g}: {v['in_distribution']:.3f} / {v['held_out']:.3f}"
            for g, v in result["validation_by_guidance"].items()
        )
        lines.append(f"  validation (in distribution / held-out pair) by guidance: {sweep}")
    return lines
