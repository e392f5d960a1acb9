"""How far each model of a run moved from its pre-trained model θ0, in weights and in representations.

Per model: the relative change of its weights, ``‖θ − θ0‖ / ‖θ0‖`` over each block (the CNN, each
transformer layer, the rest) and over all of them, and the linear CKA (Kornblith et al., 2019) between
each of its hidden states and θ0's on the same frames of a corpus split. A Speech-FT model, θ0 + α·(θft −
θ0), has exactly α times its fine-tuned model's weight change; CKA shows what that does to the
representations, layer by layer (1: the same up to rotation and scale).

θ0 is the model the fine-tuning started from: the upstream stage, or the continued pre-training a recipe
ran first. Hidden states are the model's own (no layer norm), extracted for θ0 and its models batch by
batch; the CKA statistics are accumulated over the batches (float64), so memory does not grow with the
number of frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import HarnessError
from harness.core.manifest import PreparedCorpus
from harness.core.registry import PluginManager, default_manager
from harness.core.result_rows import distinct_outputs
from harness.core.stage_kinds import StageKind
from harness.core.store import StageRow, Store
from harness.data import audio
from harness.models import featurizer
from harness.models.inference import batched_forward, length_sorted_batches
from harness.models.model_io import load_model, model_device
from harness.report.models import RunModel, models_named, run_models

#: the weights of the models compared with one θ0 held in memory at once (about 20 HuBERT Base models); past
#: it they are taken in chunks, θ0 running again for each
MODEL_BYTES_AT_ONCE = 8e9
#: a transformer layer's parameters: ``...layers.<i>.``
LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class CKAStatistics:
    """What linear CKA needs of two feature sets, summed over frames added in chunks: ``XᵀX``, ``YᵀY``,
    ``YᵀX``, the column sums and the frame count (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.xx = self.yy = self.yx = self.sx = self.sy = None  # type: ignore[assignment]

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Frames ``x`` [n, d1] and ``y`` [n, d2], row i of both the same frame."""
        if x.shape[0] != y.shape[0]:
            raise HarnessError(f"two models gave {x.shape[0]} and {y.shape[0]} frames for the same audio; CKA "
                               "compares models of one architecture.")
        x, y = x.double(), y.double()
        parts = (x.T @ x, y.T @ y, y.T @ x, x.sum(0), y.sum(0))
        if self.xx is None:
            self.xx, self.yy, self.yx, self.sx, self.sy = parts
        else:
            for name, part in zip(("xx", "yy", "yx", "sx", "sy"), parts, strict=True):
                getattr(self, name).add_(part)
        self.n += x.shape[0]

    def cka(self) -> float:
        """Linear CKA of the frames added: ``‖YcᵀXc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F)`` with centred columns."""
        if self.n < 2:
            raise HarnessError("linear CKA needs at least two frames.")
        xx = self.xx - torch.outer(self.sx, self.sx) / self.n
        yy = self.yy - torch.outer(self.sy, self.sy) / self.n
        yx = self.yx - torch.outer(self.sy, self.sx) / self.n
        denominator = torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)
        return float(torch.linalg.matrix_norm(yx) ** 2 / denominator) if denominator > 0 else float("nan")


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two feature sets of the same ``n`` frames ([n, d1], [n, d2])."""
    stats = CKAStatistics()
    stats.add(x, y)
    return stats.cka()


def weight_blocks(model: torch.nn.Module, cnn: torch.nn.Module | None) -> dict[str, str]:
    """Each parameter's block: ``cnn`` (the downsampling module), ``layer i`` (transformer layer i, from 1,
    whose output is hidden state i), or ``other`` (projections, positional convolution, norms)."""
    prefix = next((name for name, module in model.named_modules() if module is cnn and name), None)
    out = {}
    for name, _ in model.named_parameters():
        layer = LAYER.search(name)
        if prefix is not None and name.startswith(prefix + "."):
            out[name] = "cnn"
        elif layer is not None:
            out[name] = f"layer {int(layer.group(1)) + 1}"
        else:
            out[name] = "other"
    return out


def weight_change(model: torch.nn.Module, base: torch.nn.Module, blocks: dict[str, str]) -> dict[str, float]:
    """``‖θ − θ0‖ / ‖θ0‖`` per block and over every parameter (``all``), blocks in the model's order."""
    base_params = dict(base.named_parameters())
    moved: dict[str, float] = {}
    size: dict[str, float] = {}
    for name, param in model.named_parameters():
        if name not in base_params:
            raise HarnessError(f"the pre-trained model has no parameter {name}; the two models differ in "
                               "architecture.")
        reference = base_params[name].detach().double()
        for block in (blocks[name], "all"):
            moved[block] = moved.get(block, 0.0) + float((param.detach().double() - reference).pow(2).sum())
            size[block] = size.get(block, 0.0) + float(reference.pow(2).sum())
    order = [*dict.fromkeys(blocks.values()), "all"]
    return {b: (moved[b] / size[b]) ** 0.5 if size[b] > 0 else float("nan") for b in order if b in moved}


def pretrained_of(key: str, stages: dict[str, StageRow]) -> str:
    """The stage key of θ0 for the model stage ``key``: up through fine-tunings (their ``model``) and merges
    (their ``base``) to the upstream, or to the continued pre-training the recipe ran first."""
    stage = stages.get(key)
    while stage is not None and stage.kind in (StageKind.FINETUNE, StageKind.MERGE):
        if stage.kind == StageKind.FINETUNE and stage.labels.get("finetune") == "pretrain":
            break
        key = stage.inputs["model" if stage.kind == StageKind.FINETUNE else "base"]
        stage = stages.get(key)
    return key


@dataclass
class ModelDrift:
    model: RunModel
    reference: str  # the stage key of the model it is compared with: θ0, or the one asked for
    weights: dict[str, float]  # block -> relative change; "all" last
    cka: list[float] = field(default_factory=list)  # per hidden state, 0 = the input to the first layer
    frames: int = 0  # the frames CKA compared

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a value that could not be computed (a constant hidden state's CKA) is None."""
        m = self.model
        return {"model": m.label, "upstream": m.upstream, "seed": m.seed, "stage": m.stage,
                "reference": self.reference, "weight_change": {b: _finite(v) for b, v in self.weights.items()},
                "cka": [_finite(v) for v in self.cka], "frames": self.frames}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class DriftSettings:
    """What a drift report compares: the first ``utterances`` of ``split`` of ``corpus`` (None: the corpus most
    evaluations read), with each model's θ0 or with the model ``reference`` names, on the hidden states as the
    model gives them or layer-normed as the probes' weighted sum reads them."""

    corpus: str | None = None
    split: str = "test"
    utterances: int = 100
    reference: str | None = None
    layer_norm: bool = False


@dataclass
class DriftReport:
    settings: DriftSettings
    corpus: str  # the corpus compared on (the settings' or the one most evaluations read)
    utterances: int  # the utterances compared (at most the settings')
    models: list[ModelDrift]

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings
        return {"corpus": self.corpus, "split": settings.split, "utterances": self.utterances,
                "reference": settings.reference, "layer_norm": settings.layer_norm,
                "models": [m.to_dict() for m in self.models]}


def corpus_stage(stages: dict[str, StageRow], name: str | None) -> StageRow:
    """The prepared corpus called ``name``, or, without one, the corpus most evaluations read."""
    corpora = {s.labels.get("corpus"): s for s in stages.values() if s.kind == StageKind.PREPARE}
    if name is None:
        used = [s.inputs.get("corpus") for s in stages.values() if s.kind == StageKind.EVALUATE]
        by_use = sorted(corpora.values(), key=lambda s: -used.count(s.key))
        if not by_use:
            raise HarnessError("this run prepared no corpus, so there is no audio to compare representations on.")
        return by_use[0]
    if name not in corpora:
        known = ", ".join(sorted(str(c) for c in corpora)) or "none"
        raise HarnessError(f"this run prepared no corpus {name!r} (it has: {known}); give one of them with --corpus.")
    return corpora[name]


def model_drift(output: Path, plugins: PluginManager, settings: DriftSettings = DriftSettings(),
                device: torch.device | str = "cpu", max_seconds: float = 60.0) -> DriftReport:
    """The weight change and per-layer CKA with θ0 of every evaluated model of the run in ``output`` that is not
    θ0 itself (none in a run without fine-tuning); with a ``reference`` (a model's label), with that model of the
    same seed instead, for every other model of its θ0. The models compared with one reference are held in memory
    together, up to :data:`MODEL_BYTES_AT_ONCE`, so that the reference runs once per batch for all of them."""
    output = Path(output)
    corpus, split, reference = settings.corpus, settings.split, settings.reference
    chosen = [m for m in run_models(output) if m.evaluated]
    with Store(output, readonly=True) as store:
        stages = {s.key: s for s in store.stages(status="done")}
    prepared_stage = corpus_stage(stages, corpus)
    prepared = PreparedCorpus(output / prepared_stage.key)
    if split not in prepared.splits:
        raise HarnessError(f"corpus {prepared_stage.labels.get('corpus')} has no split {split!r} (it has: "
                           f"{', '.join(prepared.splits)}); give one of them with --split.")
    rows = prepared.utterances(split)[:settings.utterances]
    by_reference: dict[str, list[RunModel]] = {}
    named = {m.seed: m for m in models_named(output, reference)} if reference is not None else {}
    for m in chosen:
        if reference is None:
            against: str | None = pretrained_of(m.stage, stages)
        else:  # the named model of the same seed, where it shares the model's θ0 (and so its architecture)
            ref = named.get(m.seed)
            same_base = ref is not None and pretrained_of(ref.stage, stages) == pretrained_of(m.stage, stages)
            against = ref.stage if ref is not None and same_base else None
        if against is not None and against != m.stage:
            by_reference.setdefault(against, []).append(m)
    results: list[ModelDrift] = []
    for against, group in by_reference.items():
        base = load_model(output / against, plugins).to(device)
        blocks = weight_blocks(base, base.downsampling_module())
        size = sum(p.numel() * p.element_size() for p in base.parameters())
        at_once = max(1, int(MODEL_BYTES_AT_ONCE // max(size, 1)))
        for start in range(0, len(group), at_once):  # θ0 runs once per chunk of models held together
            chunk = group[start:start + at_once]
            tuned = [load_model(m.folder, plugins).to(device) for m in chunk]
            drifts = [ModelDrift(m, against, weight_change(model, base, blocks))
                      for m, model in zip(chunk, tuned, strict=True)]
            stats = [[CKAStatistics() for _ in range(base.num_hidden_states)] for _ in tuned]
            frames = _accumulate(base, tuned, rows, stats, device, max_seconds, settings.layer_norm)
            for drift, per_layer in zip(drifts, stats, strict=True):
                drift.cka, drift.frames = [s.cka() for s in per_layer], frames
            results += drifts
            del tuned
    order = {m.stage: i for i, m in enumerate(chosen)}
    results.sort(key=lambda d: order[d.model.stage])
    return DriftReport(settings, str(prepared_stage.labels.get("corpus")), len(rows), results)


def drift(output: str | Path | Sequence[str | Path], *, corpus: str | None = None, split: str = "test",
          utterances: int = 100, device: str = "auto", reference: str | None = None,
          layer_norm: bool = False) -> dict[str, Any]:
    """``harness drift DIR --format json`` from Python: the report of :func:`model_drift` as a dict (``corpus``,
    ``split``, ``utterances``, ``reference``, ``layer_norm`` and per model ``weight_change`` by block, ``cka`` by
    hidden state and ``frames``). Several output folders (a study run in pieces) give one report of all their
    models; ``reference`` names the model to compare with instead of θ0 (one folder); see :class:`DriftSettings`."""
    if utterances < 1:
        raise HarnessError(f"utterances={utterances} compares no audio; give 1 or more.")
    outputs = distinct_outputs(output)
    if reference is not None and len(outputs) > 1:
        raise HarnessError("a reference model is looked up in one output folder; give one folder with it.")
    plugins, where = default_manager(), model_device(device)
    settings = DriftSettings(corpus, split, utterances, reference, layer_norm)
    reports = [model_drift(o, plugins, settings, device=where).to_dict() for o in outputs]
    # a model found in two folders: once (the pre-trained model is a row per seed where a reference is named)
    models = list({(m["stage"], m["seed"], m["reference"]): m for r in reports for m in r["models"]}.values())
    if not models:
        if reference is not None:
            raise HarnessError(f"{outputs[0]} holds no other evaluated model of the pre-trained model behind "
                               f"{reference!r} to compare with it.")
        raise HarnessError(f"{', '.join(map(str, outputs))} holds no evaluated model other than pre-trained ones; "
                           "fine-tune or merge one first.")
    return {**reports[0], "models": models}


def _accumulate(base: Any, tuned: list[Any], rows: list[dict[str, Any]], stats: list[list[CKAStatistics]],
                device: torch.device | str, max_seconds: float, normed: bool) -> int:
    """Run θ0 and its models on the same batches of ``rows``, one batch at a time; add each hidden state's
    frames (layer-normed where ``normed``) to ``stats``. Returns the number of frames."""
    wavs = [audio.load_utterance(r) for r in rows]
    frames = 0
    for batch in length_sorted_batches([len(w) for w in wavs], max_seconds):
        reference = _frames(base, wavs, batch, device, normed)
        frames += reference[0].shape[0]
        for model, per_layer in zip(tuned, stats, strict=True):
            for s, x, y in zip(per_layer, reference, _frames(model, wavs, batch, device, normed), strict=True):
                s.add(x, y)
    return frames


def _frames(model: Any, wavs: list[Any], batch: list[int], device: torch.device | str,
            normed: bool) -> list[torch.Tensor]:
    """Per hidden state, the valid frames of the utterances of ``batch`` one after another (layer-normed per
    frame where ``normed``)."""
    states = dict(batched_forward(model, wavs, batches=[batch], device=device))
    layers = [torch.cat([states[i][layer] for i in batch]) for layer in range(len(states[batch[0]]))]
    return [featurizer.layer_norm(h) for h in layers] if normed else layers
