"""Recipe -> DAG of stages with content keys.

The recipe's cross-product upstreams × finetune × merges × downstreams × seeds becomes stages of
six kinds: ``prepare`` (corpus), ``upstream`` (θ0), ``finetune`` (θft), ``merge`` (θ), ``evaluate``
(a downstream on a model) and ``score`` (the SUPERB score of one model and seed). A stage's key
hashes its kind, plugin name and version, resolved parameters, seed and its inputs' keys, so the
same work in different cells of the product is one stage. Parameters that only change how a stage runs
(:data:`harness.core.plugin.EXECUTION_ONLY`) are kept beside the key, in ``Stage.execution``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.params import input_paths, keyed_params
from harness.core.recipe import NONE_PLUGIN, Entry, Recipe, Variant
from harness.core.registry import PluginManager
from harness.core.stage_kinds import PLUGIN_KINDS, StageKind

SCORE_VERSION = "1"


@dataclass
class Stage:
    key: str
    kind: str
    plugin: str
    version: str
    params: dict[str, Any]
    inputs: dict[str, str]
    seed: int
    labels: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)  # execution-only values off their defaults

    @property
    def title(self) -> str:
        return self.labels.get("title", f"{self.kind} {self.plugin}")

    @property
    def run_params(self) -> dict[str, Any]:
        """The parameters the stage runs with: its keyed ones and the execution-only values it was given."""
        return {**self.params, **self.execution}


@dataclass
class Plan:
    recipe: Recipe
    stages: dict[str, Stage]

    def ordered(self) -> list[Stage]:
        """Stages in dependency order (inputs first), stable across runs."""
        order: list[Stage] = []
        seen: set[str] = set()

        def visit(key: str) -> None:
            if key in seen:
                return
            seen.add(key)
            for dep in self.stages[key].inputs.values():
                visit(dep)
            order.append(self.stages[key])

        for key in self.stages:
            visit(key)
        return order

    def counts(self) -> Counter:
        return Counter(s.kind for s in self.stages.values())

    def dependents(self, key: str) -> set[str]:
        """Every stage that (transitively) consumes ``key``."""
        out: set[str] = set()
        frontier = {key}
        while frontier:
            nxt = {s.key for s in self.stages.values() if frontier & set(s.inputs.values())} - out
            out |= nxt
            frontier = nxt
        return out


def stage_key(kind: str, plugin: str, version: str, params: dict, inputs: dict[str, str], seed: int) -> str:
    blob = json.dumps({"kind": kind, "plugin": plugin, "version": version, "params": params,
                       "inputs": inputs, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _kind_of_tuning(variant: Variant) -> str:
    """How an unmerged fine-tuned model is labelled: its Params' ``tuning_label()`` where they define
    one (stable fine-tuning's knobs do: :class:`~harness.training.stable_ft_params.StableFTParams`),
    else "fine-tuned"."""
    label = getattr(variant.params, "tuning_label", None)
    return label() if callable(label) else "fine-tuned"


@dataclass
class _Model:
    """A model in the product: the stage that produced it and how the leaderboard names it."""

    key: str
    labels: dict[str, Any]


class Planner:
    def __init__(self, recipe: Recipe, plugins: PluginManager):
        self.recipe = recipe
        self.plugins = plugins
        self.stages: dict[str, Stage] = {}
        self.corpus_keys: dict[str, str] = {}
        # an upstream's keyed and execution-only params: checkpoints hashed once, not once per seed
        self.upstream_params: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def add(self, kind: StageKind, plugin: str, params: dict, inputs: dict[str, str], seed: int,
            labels: dict[str, Any], execution: dict[str, Any] | None = None) -> str:
        """The key of the stage doing this work, added unless an equal one is there (the first one's labels
        and execution-only values stay)."""
        version = SCORE_VERSION if kind == StageKind.SCORE else self._version(kind, plugin)
        key = stage_key(kind, plugin, version, params, inputs, seed)
        if key not in self.stages:
            resources = dict(self.recipe.resources.get(kind, {}))
            self.stages[key] = Stage(key, kind, plugin, version, params, inputs, seed, labels, resources,
                                     dict(execution or {}))
        return key

    def _version(self, kind: StageKind, plugin: str) -> str:
        info = self.plugins.get(PLUGIN_KINDS[kind], plugin)
        return f"{info.version}@{info.origin}"

    # ------------------------------------------------------------------ building blocks

    def corpus(self, name: str) -> str:
        if name not in self.corpus_keys:
            entry = self.recipe.entries["corpora"][name]
            variant = entry.variants[0]
            params, execution = keyed_params(variant.params)
            if self.recipe.limit is not None:  # a cut corpus: another stage, and so are all that use it
                params["utterance_limit"] = self.recipe.limit
            self.corpus_keys[name] = self.add(StageKind.PREPARE, entry.plugin, params, {}, 0,
                                              {"title": f"prepare {name}", "corpus": name}, execution)
        return self.corpus_keys[name]

    def finetune(self, entry: Entry, variant: Variant, model: str, seed: int, labels: dict) -> str:
        inputs = {"model": model}
        for ref in entry.corpus_refs:
            inputs[f"corpus:{ref}"] = self.corpus(ref)
        params, execution = keyed_params(variant.params)
        if "corpus" in entry.structural:
            params = {**params, "corpus": entry.structural["corpus"]}
        # its place among the plan's fine-tunings: the curves figure's panel order, whatever order they ran in
        rank = sum(stage.kind == StageKind.FINETUNE for stage in self.stages.values())
        return self.add(StageKind.FINETUNE, entry.plugin, params, inputs, seed,
                        {**labels, "rank": [rank],
                         "title": f"finetune {entry.name} ({labels.get('upstream')}, seed {seed})"}, execution)

    def merge(self, entry: Entry, variant: Variant, base: str, models: list[str], labels: dict) -> str:
        plugin = self.plugins.create("merge", entry.plugin)
        shortcut = plugin.shortcut(variant.params, len(models))
        if shortcut == "base":
            return base
        if shortcut == "model" and len(models) == 1:
            return models[0]
        inputs = {"base": base, **{f"models.{i}": m for i, m in enumerate(models)}}
        params, execution = keyed_params(variant.params)
        return self.add(StageKind.MERGE, entry.plugin, params, inputs, 0,
                        {**labels, "title": f"merge {entry.name} {variant.label}".strip()}, execution)

    # ------------------------------------------------------------------ the product

    def models(self, up_name: str, seed: int) -> list[_Model]:
        """Every model of one upstream and seed: θ0, fine-tuned and merged ones."""
        recipe = self.recipe
        up = recipe.entries["upstreams"][up_name]
        base_labels = {"upstream": up_name, "seed": seed}
        if up_name not in self.upstream_params:
            self.upstream_params[up_name] = _upstream_params(up.variants[0].params)
        params, execution = self.upstream_params[up_name]
        key = self.add(StageKind.UPSTREAM, up.plugin, params, {}, 0,
                       {"title": f"load {up_name}", "upstream": up_name}, execution)
        pre = up.structural.get("pretrain")
        if pre is not None:
            key = self.finetune(pre, pre.variants[0], key, 0, {"upstream": up_name, "finetune": "pretrain"})
        theta0 = key
        models = []
        if recipe.baseline:
            models.append(_Model(theta0, {**base_labels, "finetune": "none", "merge": "", "alpha": 0.0,
                                          "model": "pre-trained"}))
        if not self.plugins.get("upstream", up.plugin).cls.trainable:
            return models
        finetunes = {n: e for n, e in recipe.entries["finetune"].items() if e.plugin != NONE_PLUGIN}
        tuned: dict[str, list[tuple[Variant, str]]] = {}
        for name, entry in finetunes.items():
            tuned[name] = [(v, self.finetune(entry, v, theta0, seed, {**base_labels, "finetune": name}))
                           for v in entry.variants]
        each_merges = [e for e in recipe.entries["merges"].values()
                       if "models" not in e.structural and self._mode(e) != "chain"]
        for name, runs in tuned.items():
            for variant, ft_key in runs:
                ft_label = f"{name}" + (f"[{variant.label}]" if variant.label else "")
                applicable = [m for m in each_merges if name in m.structural.get("each", [name])]
                if not applicable:
                    models.append(_Model(ft_key, {**base_labels, "finetune": ft_label, "merge": "",
                                                  "alpha": 1.0, "model": f"{ft_label} ({_kind_of_tuning(variant)})"}))
                for merge in applicable:
                    for mv in merge.variants:
                        key = self.merge(merge, mv, theta0, [ft_key], {**base_labels, "finetune": ft_label})
                        models.append(_Model(key, self._merge_labels(base_labels, ft_label, merge, mv)))
        for merge in recipe.entries["merges"].values():
            names = merge.structural.get("models")
            if names is None:
                continue
            for mv in merge.variants:
                if self._mode(merge) == "chain":
                    key = theta0
                    for name in names:
                        entry = finetunes[name]
                        ft = self.finetune(entry, entry.variants[0], key, seed,
                                           {**base_labels, "finetune": f"{name} (after {key[:6]})"})
                        params, execution = keyed_params(mv.params)
                        key = self.add(StageKind.MERGE, merge.plugin, params, {"base": key, "models.0": ft}, 0,
                                       {**base_labels, "title": f"merge {merge.name} link {name}"}, execution)
                else:
                    key = self.merge(merge, mv, theta0, [tuned[n][0][1] for n in names], base_labels)
                models.append(_Model(key, self._merge_labels(base_labels, "+".join(names), merge, mv)))
        return models

    def _mode(self, entry: Entry) -> str:
        return self.plugins.get("merge", entry.plugin).cls.mode

    @staticmethod
    def _merge_labels(base: dict, ft_label: str, merge: Entry, variant: Variant) -> dict:
        params = variant.params.model_dump(mode="json") if variant.params is not None else {}
        label = f"{ft_label} · {merge.name}" + (f" {variant.label}" if variant.label else "")
        return {**base, "finetune": ft_label, "merge": merge.name, "merge_params": variant.swept,
                "alpha": params.get("alpha"), "model": label}

    def evaluations(self, model: _Model, seed: int) -> dict[str, str]:
        """Evaluate stages of one model, by downstream entry name."""
        out = {}
        for rank, (name, entry) in enumerate(self.recipe.entries["downstreams"].items()):
            variant = entry.variants[0]
            corpus = self.corpus(entry.corpus_refs[0])
            params, execution = keyed_params(variant.params)
            out[name] = self.add(StageKind.EVALUATE, entry.plugin, params, {"model": model.key, "corpus": corpus}, seed,
                                 {**model.labels, "downstream": name, "task": entry.plugin,
                                  "rank": [*model.labels.get("rank", []), rank],
                                  "title": f"evaluate {name} on {model.labels['model']} "
                                           f"({model.labels['upstream']}, seed {seed})"}, execution)
        return out

    def build(self) -> Plan:
        recipe = self.recipe
        upstream_names = list(recipe.entries["upstreams"])
        baselines = [n for n in self.plugins.names("upstream") if self.plugins.get("upstream", n).cls.baseline]
        baseline_name = next((n for n in upstream_names
                              if recipe.entries["upstreams"][n].plugin in baselines), None)
        if recipe.reference == "measured" and baseline_name is None and baselines:
            baseline_name = baselines[0]  # the entry is named after its plugin
            params = self.plugins.get("upstream", baseline_name).cls.Params()
            recipe.entries["upstreams"][baseline_name] = Entry("upstreams", baseline_name, baseline_name,
                                                               [Variant(params, {})])
            upstream_names.append(baseline_name)
        tasks = {n: e.plugin for n, e in recipe.entries["downstreams"].items()
                 if recipe.score_tasks is None or n in recipe.score_tasks}
        score_params: dict[str, Any] = {"reference": recipe.reference, "tasks": tasks}
        table_digest = _file_digest(recipe.reference)
        if table_digest is not None:
            score_params["table_sha256"] = table_digest  # an edited table re-scores
        for seed in recipe.seeds:
            reference_evals: dict[str, str] = {}
            cells: list[tuple[_Model, dict[str, str]]] = []
            for up_rank, up_name in enumerate(upstream_names):
                for model_rank, model in enumerate(self.models(up_name, seed)):
                    # where the model stands in the recipe (its evaluations add the downstream's place):
                    # the leaderboard's row and column order, whatever order the stages ran in (see
                    # harness.report.stage_order.in_recipe_order)
                    model.labels = {**model.labels, "rank": [up_rank, model_rank]}
                    if recipe.limit is not None:  # its own leaderboard row, marked
                        model.labels = {**model.labels, "limit": recipe.limit,
                                        "model": f"{model.labels['model']} [limit {recipe.limit}]"}
                    evals = self.evaluations(model, seed)
                    cells.append((model, evals))
                    if up_name == baseline_name and model.labels["finetune"] == "none":
                        reference_evals = evals
            if not tasks:
                continue
            for model, evals in cells:
                inputs = {f"eval.{n}": k for n, k in evals.items() if n in tasks}
                if recipe.reference == "measured":
                    inputs.update({f"reference.{n}": k for n, k in reference_evals.items() if n in tasks})
                self.add(StageKind.SCORE, "superb", score_params, inputs, seed,
                         {**model.labels, "title": f"score {model.labels['model']} "
                                                   f"({model.labels['upstream']}, seed {seed})"})
        return Plan(recipe, self.stages)


def _file_digest(reference: str) -> str | None:
    """SHA-256 of a custom reference table's content (None for a built-in table or a missing file)."""
    if not reference.endswith((".yaml", ".yml")):
        return None
    return content_digest(Path(reference))


def content_digest(path: Path) -> str | None:
    """SHA-256 over a file's bytes, or over a folder's relative file names and bytes; None if missing.

    Checkpoints are keyed by content, not only by path, so that a checkpoint replaced in place is
    loaded again instead of its stale results being reused (measured: 0.23 s of hashing for a
    360 MB base model, plus reading it).
    """
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _upstream_params(params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An upstream's params for its key, with the content digest of each input path that exists, and its
    execution-only ones."""
    out, execution = keyed_params(params)
    digests = {name: content_digest(p) for name, p in input_paths(params).items()}
    digests = {name: d for name, d in digests.items() if d is not None}
    if digests:
        out["input_sha256"] = digests
    return out, execution


def build_plan(recipe: Recipe, plugins: PluginManager) -> Plan:
    return Planner(recipe, plugins).build()
