"""Sentences with intents and slots from the project's templates (``plugins/corpora/data/sf_grammar.json``)."""

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


@lru_cache(maxsize=1)
def grammar() -> dict[str, Any]:
    """The templates and slot values shipped with the package."""
    path = resources.files("plugins.corpora").joinpath("data", "sf_grammar.json")
    return json.loads(path.read_text(encoding="utf-8"))


def intents() -> list[str]:
    return sorted(grammar()["intents"])


def slot_types() -> list[str]:
    return sorted(grammar()["slots"])


def sample_sentence(rng: np.random.Generator, intent: str | None = None) -> Sentence:
    """One sentence: a random intent (or the given one), template and slot values."""
    g = grammar()
    intent = intent or intents()[int(rng.integers(len(g["intents"])))]
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


def words() -> list[str]:
    """Every word the templates can produce, sorted."""
    g = grammar()
    out: set[str] = set()
    for templates in g["intents"].values():
        for t in templates:
            out.update(_SLOT.sub(" ", t).split())
    for values in g["slots"].values():
        for v in values:
            out.update(v.split())
    return sorted(out)
