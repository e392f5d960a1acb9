"""Where each model's numbers came from, after lm-evaluation-harness's results JSON.

For every evaluated model of a run (:func:`harness.report.models.run_models`), one record: the recipe
that ran it (name, path, sha256; the text once per recipe under ``recipes``), every stage behind it (its
lineage: corpora, θ0, fine-tuning, merges; then its evaluations and scores) with the stage's plugin
version, resolved parameters (and under ``execution`` the execution-only ones it ran with, where not
their defaults), host, device and dates, the checkpoint digests (the input files the planner hashed,
and the sha256 of the model's own ``model.safetensors``), the package versions, the git commit and the
date its last stage ended.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.core.provenance import iso_time, read_runs
from harness.core.stage_kinds import StageKind
from harness.core.store import StageRow, Store
from harness.report.models import RunModel, run_models

#: the outcome file of a finished stage (written by the stage runner)
OUTCOME = "outcome.json"
WEIGHTS = "model.safetensors"


def file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _outcome(output: Path, key: str) -> dict[str, Any]:
    """A finished stage's outcome file (empty when it cannot be read)."""
    try:
        return json.loads((output / key / OUTCOME).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _lineage(key: str, stages: dict[str, StageRow]) -> list[StageRow]:
    """``key``'s stage and every stage it read, inputs first."""
    seen: dict[str, StageRow] = {}

    def visit(k: str) -> None:
        if k in seen or k not in stages:
            return
        for dep in stages[k].inputs.values():
            visit(dep)
        seen[k] = stages[k]

    visit(key)
    return list(seen.values())


def _versions(rows: list[StageRow]) -> dict[str, Any]:
    """Each package's version; a list where the stages ran under different ones."""
    found: dict[str, list[str]] = {}
    for row in rows:
        for name, version in row.versions.items():
            if name != "plugin" and version not in found.setdefault(name, []):
                found[name].append(version)
    return {name: vs[0] if len(vs) == 1 else vs for name, vs in sorted(found.items())}


def _one(values: list[Any]) -> Any:
    distinct = [v for i, v in enumerate(values) if v is not None and v not in values[:i]]
    return distinct[0] if len(distinct) == 1 else (distinct or None)


def provenance(output: Path, models: list[RunModel] | None = None) -> dict[str, Any]:
    """``{"models": [record per evaluated model and seed], "recipes": {sha256: {name, path, text}}}``."""
    output = Path(output)
    models = [m for m in (run_models(output) if models is None else models) if m.evaluated]
    with Store(output, readonly=True) as store:
        stages = {s.key: s for s in store.stages(status="done")}
    runs = read_runs(output)
    recipes: dict[str, dict[str, Any]] = {}
    records = []
    for model in models:
        lineage = _lineage(model.stage, stages)
        evals = [s for s in stages.values() if s.kind == StageKind.EVALUATE and s.inputs.get("model") == model.stage]
        eval_keys = {s.key for s in evals}
        scores = [s for s in stages.values()
                  if s.kind == StageKind.SCORE and eval_keys & set(s.inputs.values())]
        extra = [s for e in evals for s in _lineage(e.key, stages) if s.key not in {x.key for x in lineage}]
        rows = list({s.key: s for s in [*lineage, *extra, *scores]}.values())
        run = _recipe_run(runs, model.stage, stages.get(model.stage))
        recipe = None
        if run is not None:
            info = run["recipe"]
            recipe = {"name": info.get("name"), "path": info.get("path"), "sha256": info.get("sha256"),
                      "run_date": run.get("date")}
            if info.get("sha256"):
                recipes.setdefault(info["sha256"], {k: info.get(k) for k in ("name", "path", "text")})
        outcomes = {s.key: _outcome(output, s.key) for s in rows}
        devices = {key: outcome.get("device") for key, outcome in outcomes.items()}
        checkpoints = {s.key: s.params["input_sha256"] for s in lineage
                       if s.kind == StageKind.UPSTREAM and s.params.get("input_sha256")}
        records.append({
            "model": model.label, "upstream": model.upstream, "seed": model.seed, "stage": model.stage,
            "folder": str(model.folder), "recipe": recipe,
            "checkpoints": {"inputs": checkpoints, "model_sha256": file_sha256(model.folder / WEIGHTS)},
            "versions": _versions(rows), "git_commit": _one([s.git_commit for s in rows]),
            "device": _one([devices[s.key] for s in rows if s.kind in (StageKind.FINETUNE, StageKind.EVALUATE)]),
            "host": _one([s.host for s in rows]),
            "date": iso_time(max((s.ended for s in rows if s.ended is not None), default=None)),
            "stages": [{"key": s.key, "kind": s.kind, "plugin": s.plugin, "plugin_version": s.versions.get("plugin"),
                        "name": s.name, "params": s.params, "execution": outcomes[s.key].get("execution", {}),
                        "started": iso_time(s.started), "ended": iso_time(s.ended), "host": s.host,
                        "device": devices[s.key]} for s in rows],
        })
    return {"models": records, "recipes": recipes}


def _recipe_run(runs: list[dict[str, Any]], key: str, stage: StageRow | None) -> dict[str, Any] | None:
    """The run that made stage ``key``: the last one started before it that planned it (else the last
    that planned it)."""
    planned = [r for r in runs if key in set(r.get("stages", []))]
    if not planned:
        return None
    if stage is not None and stage.started is not None:
        before = [r for r in planned if (r.get("date") or "") <= (iso_time(stage.started) or "")]
        if before:
            return before[-1]
    return planned[-1]


def attach(board: dict[str, Any], output: Path) -> dict[str, Any]:
    """The leaderboard's JSON (``Leaderboard.to_dict()``) with each row's provenance records (one per seed)
    and the recipes' texts from the output folder ``output`` (added to those already there: call it once per
    folder of a leaderboard of several)."""
    found = provenance(output)
    for row in board.get("rows", []):
        row.setdefault("provenance", []).extend(
            r for r in found["models"] if r["upstream"] == row["upstream"] and r["model"] == row["model"])
    board.setdefault("recipes", {}).update(found["recipes"])
    return board
