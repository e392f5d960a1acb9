"""Reading a recipe's YAML safely: bounded size, aliases and nesting, UTF-8 only, no duplicate keys.

Every refusal is a :class:`RecipeError` of one sentence, decided in well under a second: the text is
composed once by libyaml (when installed) and the node graph is measured with shared sub-trees
counted once, so an alias bomb ("billion laughs") is refused before anything expands it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.core.errors import RecipeError

#: a recipe is a few KB; anything near these is a mistake or an attack
MAX_RECIPE_BYTES = 256_000
MAX_ALIASES = 1_000
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 200_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_recipe_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The recipe at ``path`` as (Python value, composed node for line numbers); RecipeError if unsafe."""
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path.name} is {size // 1000:,} KB, more than a recipe's limit of "
                          f"{MAX_RECIPE_BYTES // 1000} KB; give the recipe file, not a data file.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecipeError(f"{path.name} line {line}: not UTF-8 text (byte {exc.start}); "
                          "save the recipe as UTF-8.") from None
    try:
        try:
            node = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError:  # libyaml's wording is terser: say it as the Python parser does
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{path.name}{line}: not valid YAML ({problem}); fix the syntax there.") from None
    except RecursionError:
        raise RecipeError(f"{path.name}: nested more than {MAX_DEPTH} levels deep; a recipe is a few levels "
                          "of mappings.") from None
    if node is None:
        return None, None
    _check_graph(path.name, node)
    return _Loader(text).construct_document(node), node


def _check_graph(name: str, root: yaml.Node) -> None:
    """Refuse alias bombs, cycles, deep nesting and duplicate mapping keys (naming both lines)."""
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0

    def visit(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        ident = id(node)
        if ident in expanded:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise RecipeError(f"{name} line {node.start_mark.line + 1}: more than {MAX_ALIASES} YAML "
                                  "aliases; write the values out or use fewer anchors.")
            return expanded[ident]
        if ident in open_nodes:
            raise RecipeError(f"{name} line {node.start_mark.line + 1}: a YAML alias refers to the value that "
                              "contains it; remove the recursive anchor.")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{name} line {node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels "
                              "deep; a recipe is a few levels of mappings.")
        open_nodes.add(ident)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(name, node)
            for key, value in node.value:
                total += visit(key, depth + 1) + visit(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for value in node.value:
                total += visit(value, depth + 1)
        open_nodes.discard(ident)
        expanded[ident] = total
        if total > MAX_EXPANDED_NODES:
            raise RecipeError(f"{name} line {node.start_mark.line + 1}: expands to more than "
                              f"{MAX_EXPANDED_NODES:,} values through YAML aliases; write the recipe without "
                              "nested aliases.")
        return total

    visit(root, 0)


def _check_duplicate_keys(name: str, node: yaml.MappingNode) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise RecipeError(f"{name} lines {seen[key.value]} and {line}: key {key.value!r} is given twice "
                              "in the same mapping; keep one of them.")
        seen[key.value] = line
