"""Scale before a run: the projected size of the float16 frame caches a plan fills.

Every evaluate stage whose downstream reads frames (its plugin's ``frame_cache`` is true: PR, SF,
ASR, ABX; SID and ER read pooled means) fills the frame cache of its (model, corpus) pair, up to
its ``max_frame_gb``; past that it runs the upstream on the fly (see
:mod:`harness.models.feature_cache`). The projection is ``frames × hidden states × dim × 2`` bytes
per model and corpus, with the frames counted from the prepared corpus's durations (unknown until
the corpus is prepared) and the architecture from the upstream (built on the ``meta`` device: no
memory, no weights; a checkpoint's architecture is known once its upstream stage has run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.plan import Plan, Stage
from harness.core.registry import PluginManager
from harness.core.stage_kinds import StageKind
from harness.data import audio
from harness.models.model_io import read_model_config
from harness.pipeline.execute import OUTCOME, artifact_dir

DEFAULT_MAX_FRAME_GB = 4.0


@dataclass
class FrameCacheProjection:
    """The frame caches of one upstream on one corpus (one cache per model built from the upstream, and per
    ``extract_precision`` the model's downstreams extract in on CUDA)."""

    upstream: str
    corpus: str
    models: int
    bytes_per_model: int | None
    unknown: str | None = None  # why the size is not known yet
    on_the_fly: list[str] = field(default_factory=list)  # titles of stages past their max_frame_gb

    @property
    def total_bytes(self) -> int | None:
        return None if self.bytes_per_model is None else self.bytes_per_model * self.models

    def as_json(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "corpus": self.corpus, "models": self.models,
                "bytes_per_model": self.bytes_per_model, "total_bytes": self.total_bytes,
                "unknown": self.unknown, "on_the_fly": self.on_the_fly}


def _root_upstream(plan: Plan, key: str) -> Stage:
    stage = plan.stages[key]
    while stage.kind != StageKind.UPSTREAM:
        stage = plan.stages[stage.inputs.get("model") or stage.inputs["base"]]
    return stage


def _done(output: Path, key: str) -> bool:
    return (artifact_dir(output, key) / OUTCOME).is_file()


def _architecture(stage: Stage, output: Path, plugins: PluginManager) -> tuple[Any, str | None]:
    """The upstream on the meta device, or None and why not."""
    plugin = plugins.create("upstream", stage.plugin)
    with torch.device("meta"):
        if _done(output, stage.key):
            return plugin.from_config(read_model_config(artifact_dir(output, stage.key))["config"]), None
        if stage.params.get("checkpoint"):
            return None, f"the checkpoint of {stage.title} is read when its stage runs"
        return plugin.build(validate_params(plugin.Params, stage.run_params, stage.title), stage.seed), None


def _corpus_samples(output: Path, stage: Stage) -> torch.Tensor | None:
    if not _done(output, stage.key):
        return None
    corpus = PreparedCorpus(artifact_dir(output, stage.key))
    durations = [float(r["duration"]) for split in corpus.splits for r in corpus.utterances(split)]
    return torch.tensor([int(round(d * audio.SAMPLE_RATE)) for d in durations], dtype=torch.long)


def project_frame_caches(plan: Plan, output: Path, plugins: PluginManager) -> list[FrameCacheProjection]:
    """Per (upstream, corpus) that some frame-reading stage uses: the projected frame cache."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for stage in plan.ordered():
        if stage.kind != StageKind.EVALUATE:
            continue
        if not getattr(plugins.get("downstream", stage.plugin).cls, "frame_cache", False):
            continue
        if stage.run_params.get("cache") == "off":
            continue
        root = _root_upstream(plan, stage.inputs["model"])
        group = groups.setdefault((root.key, stage.inputs["corpus"]), {"models": set(), "stages": []})
        # features extracted in another precision (on CUDA) are a cache of their own
        group["models"].add((stage.inputs["model"], stage.params.get("extract_precision", "fp32")))
        group["stages"].append(stage)
    out = []
    arch: dict[str, tuple[Any, str | None]] = {}
    for (up_key, corpus_key), group in groups.items():
        up, corpus = plan.stages[up_key], plan.stages[corpus_key]
        names = (up.labels.get("upstream", up.plugin), corpus.labels.get("corpus", corpus.plugin))
        if up_key not in arch:
            arch[up_key] = _architecture(up, output, plugins)
        model, why = arch[up_key]
        samples = _corpus_samples(output, corpus)
        if samples is None:
            why = why or f"{corpus.title} has not run yet (sizes come from its durations)"
        size = None
        if why is None:
            frames = int(model.frame_lengths(samples).sum()) if len(samples) else 0
            size = frames * model.num_hidden_states * model.hidden_size * 2
        over = [s.title for s in group["stages"]
                if size is not None and size > float(s.run_params.get("max_frame_gb", DEFAULT_MAX_FRAME_GB)) * 1e9]
        out.append(FrameCacheProjection(*names, len(group["models"]), size, why, over))
    return out


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
