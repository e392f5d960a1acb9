"""Command-line changes to a recipe, applied to its YAML mapping before validation.

``--set KEY=VALUE`` sets one value at a dotted key path (``finetune.pr.steps=100``; the value is
read as YAML, so ``'merges.speech_ft.alpha=[0, 0.5]'`` sweeps). ``--only SECTION=a,b`` keeps only
the named entries of ``upstream``, ``finetune`` or ``downstream`` (and drops merges that name a
fine-tuning left out). Both become part of the stage keys like any recipe value, because they
change the recipe before it is planned.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from harness.core.errors import RecipeError
from harness.core.suggest import suggest

#: --only's section names -> the recipe section
ONLY_SECTIONS = {"upstream": "upstreams", "finetune": "finetune", "downstream": "downstreams"}


def parse_set(pair: str) -> tuple[tuple[str, ...], Any]:
    """``"finetune.pr.steps=100"`` -> ``(("finetune", "pr", "steps"), 100)``."""
    key, sep, value = pair.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise RecipeError(f"--set {pair!r} is not of the form KEY.PATH=VALUE; write e.g. --set finetune.pr.steps=100.")
    try:
        return path, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise RecipeError(f"--set {pair!r}: the value is not valid YAML ({problem}); quote it for the shell, "
                          "e.g. --set 'merges.m.alpha=[0, 0.5]'.") from None


def apply_sets(raw: dict[str, Any], pairs: list[str], top_keys: list[str],
               sections: list[str]) -> tuple[dict[str, Any], set[tuple[str, ...]]]:
    """``raw`` with every ``--set`` applied, and the key paths they set.

    A top-level key or a recipe entry (``finetune.pr``) that does not exist is an error naming the
    closest one, unless the value is a whole entry with a ``plugin``; a parameter that does not
    exist is left for validation, which names the closest parameter.
    """
    out = copy.deepcopy(raw)
    set_paths: set[tuple[str, ...]] = set()
    for pair in pairs:
        path, value = parse_set(pair)
        if path[0] not in top_keys:
            raise RecipeError(f"--set {'.'.join(path)}: unknown key {path[0]!r}{suggest(path[0], top_keys)}")
        if path[0] in sections and len(path) >= 2:
            entries = out.get(path[0]) or {}
            new_entry = len(path) == 2 and isinstance(value, dict) and "plugin" in value
            if path[1] not in entries and not new_entry:
                raise RecipeError(f"--set {'.'.join(path)}: there is no {path[0]} entry named {path[1]!r}"
                                  f"{suggest(path[1], [str(k) for k in entries])}")
        node = out
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise RecipeError(f"--set {'.'.join(path)}: {where} is {child!r}, not a mapping; set {where} "
                                  "itself instead.")
            node = child
        node[path[-1]] = value
        set_paths.add(path)
    return out, set_paths


def parse_only(specs: list[str]) -> dict[str, list[str]]:
    """``["downstream=pr,sid"]`` -> ``{"downstreams": ["pr", "sid"]}``."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        kind, sep, names = spec.partition("=")
        kind = kind.strip()
        if not sep or kind not in ONLY_SECTIONS or not names.strip():
            raise RecipeError(f"--only {spec!r} is not of the form KIND=NAME[,NAME...] with KIND one of "
                              f"{', '.join(ONLY_SECTIONS)}; write e.g. --only downstream=pr,sid.")
        out.setdefault(ONLY_SECTIONS[kind], []).extend(n.strip() for n in names.split(",") if n.strip())
    return out


def apply_only(raw: dict[str, Any], specs: list[str]) -> dict[str, Any]:
    """``raw`` keeping only the entries ``--only`` names (each name must exist in the recipe)."""
    out = copy.deepcopy(raw)
    for section, names in parse_only(specs).items():
        entries = out.get(section) or {}
        for name in names:
            if name not in entries:
                kind = next(k for k, s in ONLY_SECTIONS.items() if s == section)
                raise RecipeError(f"--only {kind}={name}: the recipe has no {section} entry named {name!r}"
                                  f"{suggest(name, [str(k) for k in entries])}")
        out[section] = {k: v for k, v in entries.items() if k in names}
    if "finetune" in parse_only(specs):
        kept = set(out.get("finetune") or {})
        merges = {}
        for name, entry in (out.get("merges") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("models"), list):
                if not set(entry["models"]) <= kept:
                    continue  # merges a fine-tuning left out
            if isinstance(entry, dict) and isinstance(entry.get("each"), list):
                entry = {**entry, "each": [n for n in entry["each"] if n in kept]}
                if not entry["each"]:
                    continue
            merges[name] = entry
        out["merges"] = merges
    return out
