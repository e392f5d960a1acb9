"""YAML recipe -> validated recipe. Every error names the key path and the YAML line.

A recipe::

    name: demo
    output: runs/demo
    seeds: [0]
    score: {reference: measured}          # superb-2024 | superb-slt2022 | measured | a YAML table path
    corpora:     {NAME: {plugin: P, ...params}}
    upstreams:   {NAME: {plugin: P, ...params, pretrain: {plugin: FT, ...}}}
    finetune:    {NAME: {plugin: P, corpus: C, ...params}}      # plugin "none" is the pre-trained model
    merges:      {NAME: {plugin: P, models: [FT, ...], ...params}}
    downstreams: {NAME: {plugin: P, corpus: C, ...params}}
    presets:     {NAME: {...any of the above, merged over the recipe}}

A list given where a parameter takes a single value sweeps it (``alpha: [0.0, 0.25, 1.0]``).
``${VAR}`` in strings expands environment variables. ``--preset NAME`` (or ``HARNESS_PRESET``)
merges ``presets.NAME`` over the recipe: an entry that names a ``plugin`` replaces the recipe's
entry wholesale, any other mapping is merged key by key, and a null drops an entry.
Relative paths (``output``, input paths such as checkpoints and corpus roots, a reference table)
are read from the working directory, as in a shell: run recipes from the project's root.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.core.errors import HarnessError, RecipeError
from harness.core.overrides import apply_only, apply_sets
from harness.core.params import describe_validation_errors, input_paths, is_list_field, validate_params
from harness.core.recipe_yaml import read_recipe_yaml
from harness.core.registry import PluginManager
from harness.core.stage_kinds import STAGE_KINDS
from harness.core.suggest import suggest

SECTIONS = {
    "corpora": "corpus",
    "upstreams": "upstream",
    "finetune": "finetune",
    "merges": "merge",
    "downstreams": "downstream",
}
TOP_KEYS = ["name", "description", "output", "seeds", "score", "baseline", "resources", "presets", *SECTIONS]
#: keys the planner reads itself; handed to a plugin only when its Params declare them
STRUCTURAL = {"upstreams": ("pretrain",), "merges": ("models", "each"), "finetune": ("corpus",),
              "downstreams": ("corpus",)}
NONE_PLUGIN = "none"
REFERENCES = ("superb-2024", "superb-slt2022", "measured")
ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RecipeProblems(RecipeError):
    """Several problems of one recipe, each one sentence on its own line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problems in the recipe; fix them all, then rerun:\n"
                         + "\n".join(f"  {p}" for p in problems))

    @staticmethod
    def of(errors: list[RecipeError]) -> RecipeError:
        """One error for ``errors``: the error itself when there is one, else every problem listed."""
        problems = [p for e in errors for p in (e.problems if isinstance(e, RecipeProblems) else [str(e)])]
        return errors[0] if len(problems) == 1 else RecipeProblems(problems)


@dataclass
class Variant:
    """One point of an entry's parameter sweep."""

    params: Any  # the plugin's validated Params
    swept: dict[str, Any]  # the swept keys and their values at this point

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.swept.items())


@dataclass
class Entry:
    section: str
    name: str
    plugin: str
    variants: list[Variant]
    structural: dict[str, Any] = field(default_factory=dict)
    corpus_refs: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.section}.{self.name}"


@dataclass
class Recipe:
    path: Path
    name: str
    output: Path
    seeds: list[int]
    reference: str
    baseline: bool
    resources: dict[str, dict[str, float]]
    entries: dict[str, dict[str, Entry]]
    inputs: dict[str, Path]  # "section.entry.param" -> path the user brings
    lines: dict[tuple[str, ...], int]
    limit: int | None = None  # utterances per split of every corpus (--limit: a quick check)
    score_tasks: list[str] | None = None  # the downstream entries the SUPERB score averages (None: every one)

    def missing_inputs(self) -> dict[str, Path]:
        return {k: p for k, p in self.inputs.items() if not p.exists()}


# ---------------------------------------------------------------------- YAML with line numbers


def _line_map(node: yaml.Node, path: tuple[str, ...] = (), out: dict | None = None) -> dict:
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (str(key.value),)] = key.start_mark.line + 1
            _line_map(value, path + (str(key.value),), out)
            out[path + (str(key.value),)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _line_map(value, path + (str(i),), out)
    return out


class _Locator:
    def __init__(self, source: Path, lines: dict, preset: str | None):
        self.source, self.lines, self.preset = source, lines, preset
        self.overridden: set[tuple[str, ...]] = set()  # key paths set by --set

    def line(self, path: tuple[str, ...]) -> int | None:
        candidates = []
        if self.preset:
            candidates.append(("presets", self.preset, *path))
        candidates.append(path)
        for cand in candidates:
            for cut in range(len(cand), 0, -1):
                if cand[:cut] in self.lines and (cut == len(cand) or cand[0] != "presets" or cut > 2):
                    return self.lines[cand[:cut]]
        return None

    def error(self, path: tuple[str, ...], message: str) -> RecipeError:
        where = ".".join(path) or "the recipe"
        if any(path[: len(p)] == p for p in self.overridden):
            return RecipeError(f"--set {where}: {message}")
        line = self.line(path)
        at = f"{self.source.name} line {line}" if line else self.source.name
        return RecipeError(f"{at}: {where}: {message}")


# ---------------------------------------------------------------------- loading


def load_recipe(path: Path, plugins: PluginManager, preset: str | None = None,
                output: Path | None = None, allow_unset: bool = False, overrides: list[str] | None = None,
                only: list[str] | None = None) -> Recipe:
    """Read, merge the preset, expand variables, validate every entry against its plugin.

    ``allow_unset`` (for ``harness plan``) keeps ``${VAR}`` of unset variables in the paths, which
    then show as missing inputs, instead of failing on them. ``overrides`` (``--set KEY=VALUE``) and
    ``only`` (``--only downstream=pr,sid``) change the recipe after its preset, before validation:
    see :mod:`harness.core.overrides`.
    """
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"recipe {path} does not exist; give the path of a YAML recipe (see recipes/).")
    raw, node = read_recipe_yaml(path)
    if not isinstance(raw, dict):
        raise RecipeError(f"{path.name}: a recipe is a mapping with keys such as upstreams and downstreams.")
    lines = _line_map(node) if node is not None else {}
    preset = preset if preset is not None else (os.environ.get("HARNESS_PRESET") or None)
    loc = _Locator(path, lines, preset)
    problems: list[RecipeError] = []  # every problem found, reported together

    for key in raw:
        if key not in TOP_KEYS:
            problems.append(loc.error((str(key),), f"unknown key{suggest(str(key), TOP_KEYS)}"))
    if preset:
        presets = raw.get("presets") or {}
        if preset not in presets:
            have = suggest(preset, list(presets)) if presets else " (the recipe defines none)"
            raise loc.error(("presets",), f"no preset named {preset!r}{have}")
        raw = merge_preset(raw, presets[preset])
    raw.pop("presets", None)
    if overrides:
        raw, loc.overridden = apply_sets(raw, overrides, [k for k in TOP_KEYS if k != "presets"], list(SECTIONS))
    if only:
        raw = apply_only(raw, only)
    unset: list[tuple[str, tuple[str, ...]]] = []
    raw = _expand_env(raw, (), unset)
    if unset and not allow_unset:
        names = sorted({var for var, _ in unset})
        var, where = unset[0]
        if len(names) == 1:
            raise loc.error(where, f"environment variable {var} is not set; export {var}=/path/to/data "
                                   "or write the path itself")
        raise loc.error(where, f"environment variables {', '.join(names)} are not set; export them "
                               "(`harness plan` lists the paths the recipe needs)")

    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                         for s in seeds):
        problems.append(loc.error(("seeds",), "expected a list of integers such as [0, 1, 2]"))
        seeds = [0]
    score = raw.get("score") or {}
    if not isinstance(score, dict):
        problems.append(loc.error(("score",), "expected a mapping such as {reference: superb-2024}"))
        score = {}
    for key in score:
        if key not in ("reference", "tasks"):
            problems.append(loc.error(("score", str(key)), f"unknown key{suggest(str(key), ['reference', 'tasks'])}"))
    score_tasks = score.get("tasks")
    if score_tasks is not None and (not isinstance(score_tasks, list) or not score_tasks
                                    or not all(isinstance(t, str) for t in score_tasks)):
        problems.append(loc.error(("score", "tasks"), "expected a list of downstream entry names such as "
                                                      "[pr, sid, er, sf]"))
        score_tasks = None
    reference = str(score.get("reference", "superb-2024"))
    inputs: dict[str, Path] = {}
    if reference not in REFERENCES:
        if not reference.endswith((".yaml", ".yml")):
            problems.append(loc.error(("score", "reference"),
                                      f"unknown reference {reference!r}{suggest(reference, list(REFERENCES))} "
                                      "(or give the path of a YAML table)"))
        ref_path = Path(reference).absolute()  # relative to the working directory, like every path
        reference = str(ref_path)
        inputs["score.reference"] = ref_path

    entries: dict[str, dict[str, Entry]] = {}
    for section, kind in SECTIONS.items():
        block = raw.get(section) or {}
        if not isinstance(block, dict):
            problems.append(loc.error((section,), f"expected a mapping of names to {kind} entries"))
            block = {}
        entries[section] = {}
        for name, value in block.items():
            try:
                entry = _parse_entry(section, str(name), value, plugins, loc)
            except RecipeError as exc:
                problems.append(exc)
                continue
            entries[section][str(name)] = entry
            for v in entry.variants:
                if v.params is None:
                    continue
                for param, p in input_paths(v.params).items():
                    inputs[f"{section}.{name}.{param}"] = p
            if section == "upstreams" and "pretrain" in entry.structural:
                try:
                    pre = _parse_entry("finetune", f"{name}.pretrain", entry.structural["pretrain"], plugins, loc,
                                       path=(section, str(name), "pretrain"))
                except RecipeError as exc:
                    problems.append(exc)
                    continue
                entry.structural["pretrain"] = pre

    if not entries["upstreams"] and not problems:
        problems.append(loc.error(("upstreams",), "the recipe needs at least one upstream (the model under study)"))
    if not problems:  # references to entries that failed would only repeat their problems
        _check_references(entries, loc, problems)
    if not problems:
        _check_labels(entries, plugins, loc, problems)
        _check_tasks(entries, plugins, loc, problems)
    for task in score_tasks or []:
        if task not in entries["downstreams"]:
            problems.append(loc.error(("score", "tasks"), f"{task!r} is no downstream entry of this recipe"
                                                          f"{suggest(task, list(entries['downstreams']))}"))

    resources = raw.get("resources") or {}
    if not isinstance(resources, dict):
        problems.append(loc.error(("resources",), "expected a mapping of stage kind to {num_gpus, num_cpus, "
                                                  "memory}"))
        resources = {}
    for kind in resources:
        if kind not in STAGE_KINDS:
            problems.append(loc.error(("resources", str(kind)),
                                      f"unknown stage kind{suggest(str(kind), list(STAGE_KINDS))}"))
    baseline = raw.get("baseline", True)
    if not isinstance(baseline, bool):
        problems.append(loc.error(("baseline",), f"expected true or false, not {baseline!r} (write it without "
                                                 "quotes)"))
    if problems:
        raise RecipeProblems.of(problems)
    out = Path(output) if output else Path(str(raw.get("output", f"runs/{raw.get('name', path.stem)}")))
    return Recipe(
        path=path, name=str(raw.get("name", path.stem)), output=out, seeds=list(seeds), reference=reference,
        baseline=baseline, resources=resources, entries=entries, inputs=inputs,
        lines=lines, score_tasks=score_tasks,
    )


def merge_preset(base: dict, override: dict) -> dict:
    """Merge a preset over the recipe: an entry naming a plugin replaces, other mappings merge, a null
    inside a section (``finetune: {asr_ted: null}``) drops that entry."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict) and "plugin" not in value:
            out[key] = merge_preset(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _expand_env(value: Any, path: tuple[str, ...], unset: list[tuple[str, tuple[str, ...]]]) -> Any:
    """Expand ``${VAR}`` in strings; unset variables stay as written and are listed in ``unset``."""
    if isinstance(value, dict):
        return {k: _expand_env(v, path + (str(k),), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, path + (str(i),), unset) for i, v in enumerate(value)]
    if isinstance(value, str):
        def repl(match: re.Match) -> str:
            var = match.group(1)
            if var not in os.environ:
                unset.append((var, path))
                return match.group(0)
            return os.environ[var]
        return ENV_PATTERN.sub(repl, value)
    return value


def _parse_entry(section: str, name: str, value: Any, plugins: PluginManager, loc: _Locator,
                 path: tuple[str, ...] | None = None) -> Entry:
    kind = SECTIONS[section]
    path = path or (section, name)
    if value is None and section == "finetune":
        value = {"plugin": NONE_PLUGIN}
    if not isinstance(value, dict):
        raise loc.error(path, f"expected a mapping with a 'plugin' key (a {kind} plugin name)")
    values = dict(value)
    plugin = values.pop("plugin", None)
    if plugin is None:
        raise loc.error(path, f"missing key 'plugin' (one of: {', '.join(plugins.names(kind))})")
    plugin = str(plugin)
    if section == "finetune" and plugin == NONE_PLUGIN:
        return Entry(section, name, plugin, [Variant(None, {})])
    if plugin not in plugins.names(kind):
        raise loc.error(path + ("plugin",), f"there is no {kind} plugin named {plugin!r}"
                        f"{suggest(plugin, plugins.names(kind))}")
    cls = plugins.get(kind, plugin).cls
    structural = {}
    for key in STRUCTURAL.get(section, ()):
        if key in values and key not in cls.Params.model_fields:
            structural[key] = values.pop(key)
    corpus_refs = sorted(_corpus_refs(values) | ({structural["corpus"]} if "corpus" in structural else set()))
    # sweeps: a list where the parameter takes a single value
    swept_keys = [k for k, v in values.items() if isinstance(v, list) and not is_list_field(cls.Params, k)]
    for key in swept_keys:
        if not values[key]:
            raise loc.error(path + (key,), "an empty list sweeps no value and would drop the entry; give at "
                                           "least one value")
    variants = []
    for combo in itertools.product(*(values[k] for k in swept_keys)) if swept_keys else [()]:
        point = dict(values)
        point.update(dict(zip(swept_keys, combo)))
        try:
            params = validate_params(cls.Params, point, ".".join(path))
        except HarnessError as exc:
            try:  # every problem pydantic finds, not only the first
                cls.Params.model_validate(point)
                messages = [str(exc)]
            except ValidationError as every:
                messages = describe_validation_errors(every, cls.Params, ".".join(path))
            raise RecipeProblems.of([loc.error(_error_key(m, path), m.split(": ", 1)[-1].rstrip("."))
                                     for m in messages]) from None
        variants.append(Variant(params, dict(zip(swept_keys, combo))))
    return Entry(section, name, plugin, variants, structural, corpus_refs)


def _error_key(message: str, path: tuple[str, ...]) -> tuple[str, ...]:
    head = message.split(": ", 1)[0]
    return tuple(head.split(".")) if head.startswith(".".join(path)) else path


def _corpus_refs(value: Any) -> set[str]:
    refs: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "corpus" and isinstance(v, str):
                refs.add(v)
            elif k == "corpora" and isinstance(v, list):
                refs.update(str(x) for x in v)
            else:
                refs |= _corpus_refs(v)
    elif isinstance(value, list):
        for v in value:
            refs |= _corpus_refs(v)
    return refs


def _check_labels(entries: dict[str, dict[str, Entry]], plugins: PluginManager, loc: _Locator,
                  problems: list[RecipeError]) -> None:
    """A downstream on a corpus that declares its labels and lacks one the task needs (``er`` on a corpus
    without ``emotion``) is refused here rather than when its stage runs."""
    for entry in entries["downstreams"].values():
        needed = tuple(getattr(plugins.get("downstream", entry.plugin).cls, "label_fields", ()))
        for ref in entry.corpus_refs:
            corpus = entries["corpora"].get(ref)
            if not needed or corpus is None:
                continue
            corpus_cls = plugins.get("corpus", corpus.plugin).cls
            provided = getattr(corpus_cls(), "provided_labels", None)
            for variant in corpus.variants:
                have = provided(variant.params) if provided is not None else None
                missing = [f for f in needed if have is not None and f not in have]
                if missing:
                    known = getattr(corpus_cls, "label_options", {})
                    options = [known[f] for f in missing if f in known]
                    fix = f"set {' and '.join(options)} on corpus {ref!r}" if options else "pick a corpus that has them"
                    problems.append(loc.error(
                        (entry.section, entry.name, "corpus"),
                        f"downstream {entry.plugin!r} needs the label(s) {', '.join(missing)} but corpus {ref!r} "
                        f"({corpus.plugin}) has only {', '.join(have or ()) or 'none'}; {fix}"))
                    break


def _task_specs(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """(path, task name, task parameters) of every mapping in ``value`` that names a ``task`` with its
    ``task_params`` (the shape :func:`harness.api.resolve_task` takes; other plugins' fields named
    ``task`` are left alone)."""
    if isinstance(value, dict):
        if isinstance(value.get("task"), str) and isinstance(value.get("task_params"), dict):
            yield path, value["task"], value["task_params"]
        for key, inner in value.items():
            if key != "task_params":
                yield from _task_specs(inner, path + (str(key),))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _task_specs(inner, path + (str(i),))


def _check_tasks(entries: dict[str, dict[str, Entry]], plugins: PluginManager, loc: _Locator,
                 problems: list[RecipeError]) -> None:
    """A fine-tuning entry's ``task`` names a task or downstream plugin and its ``task_params`` are that
    plugin's parameters: refused here rather than when the fine-tuning stage starts, perhaps hours in
    (the first problem of each entry)."""
    for entry in entries["finetune"].values():
        if entry.plugin != NONE_PLUGIN:
            problem = _task_problem(entry, plugins, loc)
            if problem is not None:
                problems.append(problem)


def _task_problem(entry: Entry, plugins: PluginManager, loc: _Locator) -> RecipeError | None:
    for variant in entry.variants:
        for where, name, task_params in _task_specs(variant.params.model_dump(), (entry.section, entry.name)):
            kind = plugins.task_kind(name)
            if kind is None:
                return loc.error(where + ("task",), f"there is no task named {name!r} (a task or downstream "
                                                    f"plugin){suggest(name, plugins.task_names())}")
            params_cls = plugins.get(kind, name).cls.Params
            try:
                validate_params(params_cls, task_params, ".".join(where + ("task_params",)))
            except HarnessError as exc:
                message = str(exc)
                return loc.error(_error_key(message, where + ("task_params",)), message.split(": ", 1)[-1].rstrip("."))
    return None


def _check_references(entries: dict[str, dict[str, Entry]], loc: _Locator, problems: list[RecipeError]) -> None:
    corpora = list(entries["corpora"])
    finetunes = list(entries["finetune"])
    checked = [e for s in ("finetune", "downstreams") for e in entries[s].values()]
    checked += [e.structural["pretrain"] for e in entries["upstreams"].values() if "pretrain" in e.structural]
    for entry in checked:
        if entry.plugin == NONE_PLUGIN:
            continue
        if entry.section == "downstreams" and not entry.corpus_refs:
            problems.append(loc.error((entry.section, entry.name), "missing key 'corpus' (the corpus to evaluate "
                                      f"on; one of: {', '.join(corpora) or 'none defined'})"))
        for ref in entry.corpus_refs:
            if ref not in corpora:
                path = tuple(entry.where.split(".")) + ("corpus",)
                if "." in entry.name:  # a pretrain block
                    up = entry.name.split(".")[0]
                    path = ("upstreams", up, "pretrain", "corpus")
                problems.append(loc.error(path, f"no corpus named {ref!r}{suggest(ref, corpora)}"))
    for entry in entries["merges"].values():
        for key in ("models", "each"):
            names = entry.structural.get(key)
            if names is None:
                continue
            if not isinstance(names, list) or not names:
                problems.append(loc.error((entry.section, entry.name, key), "expected a list of finetune entry names"))
                continue
            for ref in names:
                if ref not in finetunes or entries["finetune"][ref].plugin == NONE_PLUGIN:
                    problems.append(loc.error((entry.section, entry.name, key),
                                              f"no fine-tuning entry named {ref!r}{suggest(str(ref), finetunes)}"))
