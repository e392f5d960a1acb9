"""The house's shape: layers point one way, no import cycles, built-in plugins use only harness.api."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: each sub-package of harness and its rank; a module may import only its own rank or lower ones
LAYERS = {"core": 0, "data": 1, "models": 2, "training": 3, "merging": 3, "evaluation": 4,
          "pipeline": 5, "report": 6, "cli": 7}
#: what a plugin may import from the harness
PLUGIN_API = {"harness", "harness.api"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``path`` imports anywhere (functions and TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in candidates:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def harness_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (ROOT / "harness").rglob("*.py")}
    known = set(files)
    graph = {}
    for mod, path in files.items():
        # a package's own __init__ is not an edge (importing harness.core.x imports harness.core)
        graph[mod] = {m for m in imported_modules(path, known) if m != mod and not mod.startswith(m + ".")}
    return graph


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    flat = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert flat == ["__init__.py", "api.py"]
    assert {p.name for p in (ROOT / "harness").iterdir() if (p / "__init__.py").exists()} == set(LAYERS)


def test_layers_import_only_downwards():
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in harness_graph().items()
        for dep in deps
        if layer(mod) and layer(dep) and LAYERS[layer(dep)] > LAYERS[layer(mod)]
    ]
    assert upward == []


def test_nothing_below_the_top_imports_the_plugin_api():
    users = [mod for mod, deps in harness_graph().items() if "harness.api" in deps]
    assert users == []


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle met by a depth-first walk, as the list of modules around it."""
    state: dict[str, int] = defaultdict(int)  # 0 unseen, 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state[dep] == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif state[dep] == 0:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [])
    return cycles


def test_no_import_cycles():
    assert find_cycles(harness_graph()) == []


def test_the_checks_see_what_they_look_for():
    """The walker itself: a made-up cycle is found, and so is an import inside a function."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    lazy = {"harness.cli.run_cmd"}  # imported inside a function of harness/cli/__init__.py
    assert imported_modules(ROOT / "harness" / "cli" / "__init__.py", lazy) == lazy


def test_builtin_plugins_import_only_the_declared_api():
    modules = {module_name(p) for p in (ROOT / "harness").rglob("*.py")}
    leaks = sorted(
        f"{module_name(path)} imports {dep}"
        for path in (ROOT / "plugins").rglob("*.py")
        for dep in imported_modules(path, modules)
        if dep not in PLUGIN_API
    )
    assert leaks == []


def test_no_plugin_asserts_its_params_type():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "plugins").rglob("*.py")
                 if "assert isinstance(params" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_every_api_name_resolves():
    api = importlib.import_module("harness.api")
    missing = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert missing == []
    with pytest.raises(AttributeError, match="harness.api.__all__"):
        api.not_a_name  # noqa: B018
