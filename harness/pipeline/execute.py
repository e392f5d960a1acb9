"""Running one stage: a function of its inputs that writes its own artifact folder.

:func:`execute_stage` is what every executor calls (locally or in a Ray worker). It runs the stage
in ``<output>/<key>.tmp``, writes ``outcome.json`` there and renames the folder to
``<output>/<key>`` only when everything succeeded, so a killed run never leaves a half-written
stage that looks finished. Mid-stage checkpoints live in ``<output>/.work/<key>`` until success.
Only the driver writes the results store, from the returned :class:`Outcome`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import HarnessError, StopRequested
from harness.core.interfaces import FinetuneResult
from harness.core.manifest import PreparedCorpus, write_json, write_jsonl
from harness.core.outdir import disk_full_message, is_disk_full
from harness.core.plan import Stage
from harness.core.registry import PluginManager, default_manager
from harness.core.seeding import seed_everything
from harness.core.stage import StageContext
from harness.core.stage_kinds import ACCELERATOR_KINDS, StageKind
from harness.models.model_io import load_model, model_device, read_model_config, save_model

OUTCOME = "outcome.json"
WORK = ".work"
CACHE = ".cache"


@dataclass
class Outcome:
    key: str
    status: str  # done | failed | stopped
    started: float
    ended: float
    host: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    error: str | None = None
    user_error: bool = False
    device: str | None = None  # where the stage ran (``ctx.device``), kept for provenance
    execution: dict[str, Any] = field(default_factory=dict)  # its execution-only values off their defaults

    @property
    def duration(self) -> float:
        return self.ended - self.started


def artifact_dir(output: Path, key: str) -> Path:
    return Path(output) / key


def read_outcome(output: Path, key: str) -> Outcome | None:
    path = artifact_dir(output, key) / OUTCOME
    if not path.is_file():
        return None
    return Outcome(**json.loads(path.read_text()))


def execute_stage(stage: Stage, output: str | Path,
                  on_progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                  plugins: PluginManager | None = None, device: torch.device | None = None,
                  on_cache_filled: Callable[[], None] | None = None) -> Outcome:
    """Run ``stage`` with its inputs' artifacts under ``output``; never raises for stage failures.

    ``device`` is the accelerator the executor resolved (:func:`~harness.models.model_io.model_device`;
    default ``auto``); the stage gets it as ``ctx.device`` when its kind is in :data:`ACCELERATOR_KINDS`,
    the CPU otherwise. ``on_cache_filled`` hears :meth:`StageContext.cache_filled`.
    """
    output = Path(output)
    final = artifact_dir(output, stage.key)
    started = time.time()
    host = socket.gethostname()
    if (final / OUTCOME).is_file():  # finished by an earlier run (or another worker)
        return read_outcome(output, stage.key)  # type: ignore[return-value]
    tmp = output / f"{stage.key}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    plugins = plugins or default_manager()
    ctx = StageContext(
        key=stage.key, out_dir=tmp, work_dir=output / WORK / stage.key, cache_root=output / CACHE,
        seed=stage.seed, plugins=plugins, input_keys=dict(stage.inputs),
        device=stage_device(stage.kind, model_device() if device is None else device),
        on_progress=on_progress, on_cache_filled=on_cache_filled,
    )
    inputs = {role: artifact_dir(output, key) for role, key in stage.inputs.items()}
    try:
        seed_everything(stage.seed)
        metrics = STAGE_FUNCTIONS[stage.kind](stage, inputs, ctx)
    except StopRequested as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return Outcome(stage.key, "stopped", started, time.time(), host, messages=ctx.messages, error=str(exc),
                       user_error=True)
    except HarnessError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return Outcome(stage.key, "failed", started, time.time(), host, messages=ctx.messages, error=str(exc),
                       user_error=True)
    except Exception as exc:  # recorded in the store with its traceback; the run goes on or stops cleanly
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            return Outcome(stage.key, "failed", started, time.time(), host, messages=ctx.messages,
                           error=disk_full_message(output), user_error=True)
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
        return Outcome(stage.key, "failed", started, time.time(), host, messages=ctx.messages,
                       error=f"{type(exc).__name__}: {exc}\n{detail}")
    for row in metrics:
        if row.get("items_path"):
            row["items_path"] = f"{stage.key}/{row['items_path']}"
    outcome = Outcome(stage.key, "done", started, time.time(), host, metrics=metrics, messages=ctx.messages,
                      device=str(ctx.device), execution=dict(stage.execution))
    (tmp / OUTCOME).write_text(json.dumps(asdict(outcome), indent=2, sort_keys=True) + "\n")
    _fsync_dir(tmp)
    os.replace(tmp, final)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return outcome


def _fsync_dir(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())


# ---------------------------------------------------------------------- the device contract

def stage_device(kind: str, device: torch.device) -> torch.device:
    """``device`` for a stage kind in :data:`ACCELERATOR_KINDS`, the CPU for any other."""
    return torch.device(device) if kind in ACCELERATOR_KINDS else torch.device("cpu")


# ---------------------------------------------------------------------- one function per stage kind


def _params(ctx: StageContext, kind: str, stage: Stage) -> Any:
    cls = ctx.plugins.get(kind, stage.plugin).cls
    values = {k: v for k, v in stage.run_params.items() if k in cls.Params.model_fields}
    return cls.Params.model_validate(values)


def run_prepare(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    plugin = ctx.plugins.create("corpus", stage.plugin)
    plugin.prepare(_params(ctx, "corpus", stage), ctx.out_dir, ctx)
    if stage.params.get("utterance_limit") is not None:  # harness run --limit N
        from harness.data.subset import limit_prepared

        limit_prepared(ctx.out_dir, int(stage.params["utterance_limit"]))
    return []


def run_upstream(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    plugin = ctx.plugins.create("upstream", stage.plugin)
    model = plugin.build(_params(ctx, "upstream", stage), ctx.seed)
    save_model(model, ctx.out_dir)
    return []


def run_finetune(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    plugin = ctx.plugins.create("finetune", stage.plugin)
    model = load_model(inputs["model"], ctx.plugins).to(ctx.device)
    corpora = {role.split(":", 1)[1]: PreparedCorpus(path) for role, path in inputs.items()
               if role.startswith("corpus:")}
    result = plugin.finetune(model, corpora, _params(ctx, "finetune", stage), ctx)
    if not isinstance(result, FinetuneResult):
        result = FinetuneResult(dict(result or {}), {})
    model.eval()
    save_model(model.cpu(), ctx.out_dir)
    write_json(ctx.out_dir / "finetune_metrics.json", result.metrics)
    return [{"task": f"finetune.{stage.plugin}", "metric": k, "value": float(v),
             "direction": result.directions.get(k, "higher"), "n_items": None, "items_path": None}
            for k, v in result.metrics.items()]


def run_merge(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    from harness.merging.engine import merge_files

    plugin = ctx.plugins.create("merge", stage.plugin)
    models = [inputs[r] for r in sorted((r for r in inputs if r.startswith("models.")),
                                        key=lambda r: int(r.split(".")[1]))]
    merge_files(plugin, _params(ctx, "merge", stage), inputs["base"], models, ctx.out_dir)
    if not (ctx.out_dir / "upstream.json").is_file():
        write_json(ctx.out_dir / "upstream.json", read_model_config(inputs["base"]))
    return []


def run_evaluate(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    plugin = ctx.plugins.create("downstream", stage.plugin)
    model = load_model(inputs["model"], ctx.plugins).to(ctx.device)
    model.requires_grad_(False)
    corpus = PreparedCorpus(inputs["corpus"])
    result = plugin.evaluate(model, corpus, _params(ctx, "downstream", stage), ctx)
    items_path = None
    if result.items:
        write_jsonl(ctx.out_dir / "items.jsonl", result.items)
        items_path = "items.jsonl"
    if result.predictions:
        write_jsonl(ctx.out_dir / "predictions.jsonl", result.predictions)
    write_json(ctx.out_dir / "metrics.json", {"task": stage.plugin, "metrics": result.metrics,
                                              "directions": result.directions, "n_items": result.n_items,
                                              "layer_weights": result.layer_weights, "extra": result.extra})
    undefined = sorted(name for name, value in result.metrics.items() if not math.isfinite(float(value)))
    if undefined:
        ctx.log(f"no value for {', '.join(undefined)} (not enough items in those conditions)")
    return [{"task": stage.plugin, "metric": name, "value": float(value),
             "direction": result.directions.get(name, "higher"), "n_items": result.n_items,
             "items_path": items_path} for name, value in result.metrics.items() if name not in undefined]


def _task_metrics(inputs: dict[str, Path], prefix: str) -> tuple[dict[str, float], dict[str, str]]:
    values: dict[str, float] = {}
    directions: dict[str, str] = {}
    for role, path in inputs.items():
        if role.startswith(prefix):
            data = json.loads((path / "metrics.json").read_text())
            for name, value in data["metrics"].items():
                if not math.isfinite(float(value)):
                    continue
                values[f"{data['task']}.{name}"] = value
                directions[f"{data['task']}.{name}"] = data["directions"].get(name, "higher")
    return values, directions


def run_score(stage: Stage, inputs: dict[str, Path], ctx: StageContext) -> list[dict]:
    from harness.evaluation.scoring import reference_table, superb_score

    metrics, _ = _task_metrics(inputs, "eval.")
    fbank, directions = _task_metrics(inputs, "reference.")
    if stage.params["reference"] == "measured" and not fbank:
        raise HarnessError("the measured reference needs the fbank upstream; install or add an `fbank` "
                           "upstream to the recipe, or score against superb-2024.")
    table = reference_table(stage.params["reference"], fbank, directions)
    if not any(name.lower() in table for name in metrics):
        ctx.log(f"no metric of this model ({', '.join(sorted(metrics))}) is in the reference table; no score")
        return []
    result = superb_score(metrics, table, strict=False)
    write_json(ctx.out_dir / "score.json", {"metrics": metrics, "reference": stage.params["reference"],
                                            "table": table, **result.to_json(), "ignored": result.ignored})
    rows = [{"task": "superb", "metric": "score", "value": float(result.score), "direction": "higher",
             "n_items": None, "items_path": None}]
    rows += [{"task": "superb", "metric": task, "value": float(v), "direction": "higher",
              "n_items": None, "items_path": None} for task, v in result.tasks.items()]
    return rows


STAGE_FUNCTIONS: dict[str, Callable[[Stage, dict[str, Path], StageContext], list[dict]]] = {
    StageKind.PREPARE: run_prepare,
    StageKind.UPSTREAM: run_upstream,
    StageKind.FINETUNE: run_finetune,
    StageKind.MERGE: run_merge,
    StageKind.EVALUATE: run_evaluate,
    StageKind.SCORE: run_score,
}
