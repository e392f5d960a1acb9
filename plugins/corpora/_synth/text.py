"""Sentences with intents and slots from the project's templates (``plugins/corpora/data/<grammar>.json``).

Grammars: ``sf_grammar`` (SNIPS-like sentences of five to twelve words, the default) and ``sf_commands``
(short commands with a small slot vocabulary, on which a small slot-filling probe learns).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Sentence:
    text: str  # lower-case words separated by single spaces
    intent: str
    slots: tuple[tuple[str, str], ...]  # (slot_type, value) in order of appearance


GRAMMARS = ("sf_grammar", "sf_commands")
DEFAULT_GRAMMAR = "sf_grammar"


@lru_cache(maxsize=len(GRAMMARS))
def grammar(name: str = DEFAULT_GRAMMAR) -> dict[str, Any]:
    """The templates and slot values of one grammar shipped with the package."""
    path = resources.files("plugins.corpora").joinpath("data", f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def intents(name: str = DEFAULT_GRAMMAR) -> list[str]:
    return sorted(grammar(name)["intents"])


def slot_types(name: str = DEFAULT_GRAMMAR) -> list[str]:
    return sorted(grammar(name)["slots"])


def sample_sentence(rng: np.random.Generator, intent: str | None = None, name: str = DEFAULT_GRAMMAR) -> Sentence:
    """One sentence of grammar ``name``: a random intent (or the given one), template and slot values."""
    g = grammar(name)
    intent = intent or intents(name)[int(rng.integers(len(g["intents"])))]
    templates = g["intents"][intent]
    template = templates[int(rng.integers(len(templates)))]
    slots: list[tuple[str, str]] = []

    def fill(match: re.Match[str]) -> str:
        values = g["slots"][match.group(1)]
        value = values[int(rng.integers(len(values)))]
        slots.append((match.group(1), value))
        return value

    text = " ".join(_SLOT.sub(fill, template).split())
    return Sentence(text, intent, tuple(slots))


def words(name: str = DEFAULT_GRAMMAR) -> list[str]:
    """Every word the templates of grammar ``name`` can produce, sorted."""
    g = grammar(name)
    out: set[str] = set()
    for templates in g["intents"].values():
        for t in templates:
            out.update(_SLOT.sub(" ", t).split())
    for values in g["slots"].values():
        for v in values:
            out.update(v.split())
    return sorted(out)
