"""The captioned world's grammar: its words, the captions they make, and parsing them back.

Six prompt types, GenEval's (Ghosh et al. 2023) on this world:

    single_object  "a circle"                    two_object  "a circle and a square"
    colors         "a red circle"                color_attr  "a red circle and a blue square"
    counting       "one red circle", "two yellow squares"
    position       "a green triangle above a blue circle"

``captions.py`` draws and renders them; ``canonical`` gives the form a caption model encodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

__all__ = [
    "COLOURS",
    "COUNT_WORDS",
    "PROMPT_TYPES",
    "RELATIONS",
    "SHAPES",
    "VOCABULARY",
    "Caption",
    "Thing",
    "all_captions",
    "canonical",
    "parse_caption",
]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 70),
    "blue": (40, 90, 230),
    "yellow": (235, 205, 30),
}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
PROMPT_TYPES = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COUNT_WORDS = ("one", "two")
VOCABULARY = ("a", "and", *COUNT_WORDS, *COLOURS, *SHAPES, *(s + "s" for s in SHAPES),
              "left", "right", "of", "above", "below")  # fmt: skip


@dataclass(frozen=True)
class Thing:
    """A noun phrase: ``count`` objects of ``shape`` in ``colour`` (None: any colour)."""

    shape: str
    colour: str | None = None
    count: int = 1

    def words(self, determiner: str) -> str:
        noun = self.shape + ("s" if self.count == 2 else "")
        return " ".join(w for w in (determiner, self.colour, noun) if w)


@dataclass(frozen=True)
class Caption:
    """A parsed caption: its prompt ``kind``, one or two things, and for ``position`` the
    relation of the first thing to the second. ``str()`` gives the caption's text."""

    kind: str
    things: tuple[Thing, ...]
    relation: str | None = None

    def __str__(self) -> str:
        if self.kind == "counting":
            return self.things[0].words(COUNT_WORDS[self.things[0].count - 1])
        phrases = [thing.words("a") for thing in self.things]
        return f" {self.relation or 'and'} ".join(phrases)


def _phrase(words: list[str], i: int, text: str) -> tuple[Thing, str, int]:
    """The noun phrase starting at ``words[i]``: (thing, determiner, index after it)."""
    determiner = words[i] if i < len(words) else ""
    colour = words[i + 1] if i + 1 < len(words) and words[i + 1] in COLOURS else None
    noun = words[i + 1 + (colour is not None)] if i + 1 + (colour is not None) < len(words) else ""
    count = 2 if determiner == "two" else 1
    shape = noun[:-1] if count == 2 else noun
    if (
        determiner not in ("a", *COUNT_WORDS)
        or shape not in SHAPES
        or noun != Thing(shape, None, count).words("")
    ):
        raise ValueError(f"not a caption of the grammar: {text!r} (e.g. 'a red circle')")
    return Thing(shape, colour, count), determiner, i + 2 + (colour is not None)


def parse_caption(text: str) -> Caption:
    """The Caption that ``text`` says; ValueError (with an example) if the grammar has none."""
    words, bad = text.lower().split(), ValueError(f"not a caption of the grammar: {text!r}")
    first, determiner, i = _phrase(words, 0, text)
    if i == len(words):
        if determiner in COUNT_WORDS and first.colour:
            return Caption("counting", (first,))
        if determiner == "a":
            return Caption("colors" if first.colour else "single_object", (first,))
        raise bad
    relation = " ".join(words[i : i + 2]) if words[i] in ("left", "right") else words[i]
    second, determiner2, end = _phrase(words, i + len(relation.split()), text)
    coloured = first.colour is not None, second.colour is not None
    if end != len(words) or determiner != "a" or determiner2 != "a" or len(set(coloured)) > 1:
        raise bad
    distinct = first.shape != second.shape and (
        first.colour is None or first.colour != second.colour
    )
    if relation == "and" and distinct:
        return Caption("color_attr" if coloured[0] else "two_object", (first, second))
    if relation in RELATIONS and coloured[0] and first != second:
        return Caption("position", (first, second), relation)
    raise bad


MIRRORED = {"right of": "left of", "below": "above"}  # "A right of B" says "B left of A"


def canonical(text: str) -> str:
    """``text`` with its relation read from the side of the first-named thing: "A right of B"
    -> "B left of A", "A below B" -> "B above A" (the same scene by GenEval's box-centre rule);
    any other text, in or outside the grammar, unchanged. A caption model that encodes this
    form learns one direction per axis: the first-named thing is left of or above the other."""
    try:
        caption = parse_caption(text)
    except ValueError:
        return text
    if caption.relation not in MIRRORED:
        return text
    a, b = caption.things
    return str(Caption("position", (b, a), MIRRORED[caption.relation]))


def all_captions() -> list[Caption]:
    """Every caption the grammar makes, each once (in a fixed order)."""
    pairs = list(product(COLOURS, SHAPES))
    out = [Caption("single_object", (Thing(s),)) for s in SHAPES]
    out += [
        Caption("two_object", (Thing(a), Thing(b))) for a, b in product(SHAPES, SHAPES) if a != b
    ]
    out += [Caption("colors", (Thing(s, c),)) for c, s in pairs]
    out += [Caption("counting", (Thing(s, c, n),)) for n in (1, 2) for c, s in pairs]
    for (c1, s1), (c2, s2) in product(pairs, pairs):
        if c1 != c2 and s1 != s2:
            out.append(Caption("color_attr", (Thing(s1, c1), Thing(s2, c2))))
        if (c1, s1) != (c2, s2):
            out += [Caption("position", (Thing(s1, c1), Thing(s2, c2)), r) for r in RELATIONS]
    return out
