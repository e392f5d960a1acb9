"""Small plugins of every kind for testing the core (not shipped): no audio, tiny tensors.

They follow the device contract (:mod:`harness.core.interfaces`): models build on the CPU, and what a
plugin makes (noise, inputs) it makes on ``ctx.device``, where the runner put the upstream.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from harness import hookimpl
from harness.core.interfaces import (
    EXECUTION_ONLY,
    CorpusPlugin,
    DownstreamPlugin,
    EvalResult,
    FinetunePlugin,
    InputPath,
    MergePlugin,
    PluginParams,
    UpstreamPlugin,
)
from harness.core.manifest import write_json, write_jsonl
from harness.core.model_types import UpstreamModel, UpstreamOutput


class ToyCorpusParams(PluginParams):
    n: int = 8
    root: InputPath | None = None


class ToyCorpus(CorpusPlugin):
    name = "toy_corpus"
    summary = "numbers as utterances"
    Params = ToyCorpusParams

    def prepare(self, params: ToyCorpusParams, out_dir: Path, ctx: Any) -> None:
        for split in ("train", "dev", "test"):
            write_jsonl(out_dir / f"{split}.jsonl", [{"id": f"{split}{i}", "path": f"{split}{i}.wav",
                                                      "duration": 1.0 + i, "speaker": f"s{i % 2}"}
                                                     for i in range(params.n)])
        write_json(out_dir / "meta.json", {"corpus": "toy", "splits": ["train", "dev", "test"],
                                           "label_fields": ["speaker"]})


class ToyModel(UpstreamModel):
    family = "toy_up"
    hidden_size = 4
    num_hidden_states = 2

    def __init__(self, width: int = 4):
        super().__init__()
        self.width = width
        self.cnn = torch.nn.Linear(width, width)
        self.layer = torch.nn.Linear(width, width)

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        x = self.cnn(wavs[:, : self.width].unsqueeze(1))
        return UpstreamOutput([x, self.layer(x)], torch.ones(len(wavs), dtype=torch.long, device=wavs.device))

    def config(self) -> dict[str, Any]:
        return {"width": self.width}

    def downsampling_module(self) -> torch.nn.Module:
        return self.cnn


class ToyUpParams(PluginParams):
    width: int = 4
    checkpoint: InputPath | None = None


class ToyUpstream(UpstreamPlugin):
    name = "toy_up"
    summary = "a two-linear-layer model"
    Params = ToyUpParams

    def build(self, params: ToyUpParams, seed: int) -> ToyModel:
        torch.manual_seed(seed)
        return ToyModel(params.width)

    def from_config(self, config: dict[str, Any]) -> ToyModel:
        return ToyModel(**config)


class ToyFinetuneParams(PluginParams):
    corpus: str
    steps: int = 5
    lr: float = 0.1
    sleep: float = 0.0
    fail: bool = False


class ToyFinetune(FinetunePlugin):
    """Adds seeded noise step by step, checkpointing after every step (so a kill can resume)."""

    name = "toy_ft"
    summary = "seeded weight noise, one checkpoint per step"
    Params = ToyFinetuneParams

    def finetune(self, upstream: ToyModel, corpora: dict, params: ToyFinetuneParams, ctx: Any) -> dict[str, float]:
        if params.fail:
            raise RuntimeError("toy failure")
        assert params.corpus in corpora
        state = ctx.load_checkpoint()
        start = 0
        gen = torch.Generator().manual_seed(ctx.seed)
        if state is not None:
            upstream.load_state_dict(state["model"])
            gen.set_state(state["rng"])
            start = state["step"]
            ctx.log(f"resumed at step {start}")
        for step in range(start, params.steps):
            noise = torch.randn(upstream.layer.weight.shape, generator=gen)  # drawn on the CPU: the same on any device
            with torch.no_grad():
                upstream.layer.weight.add_(params.lr * noise.to(ctx.device))
            ctx.save_checkpoint({"model": upstream.state_dict(), "rng": gen.get_state(), "step": step + 1})
            marker = os.environ.get("TOY_STEP_MARKER")
            if marker:
                Path(marker).write_text(str(step + 1))
            ctx.progress(step + 1, params.steps, loss=float(step))
            time.sleep(params.sleep)
        return {"steps": float(params.steps)}


class ToyMergeParams(PluginParams):
    alpha: float = 0.5


class ToyMerge(MergePlugin):
    name = "toy_merge"
    summary = "linear interpolation"
    Params = ToyMergeParams

    def merge_tensor(self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor],
                     params: ToyMergeParams, state: None) -> torch.Tensor:
        mean = torch.stack(finetuned).mean(0)
        return base + params.alpha * (mean - base)

    def shortcut(self, params: ToyMergeParams, n_models: int) -> Literal["base", "model"] | None:
        if params.alpha == 0.0:
            return "base"
        if params.alpha == 1.0 and n_models == 1:
            return "model"
        return None


class ToyChain(ToyMerge):
    name = "toy_chain"
    summary = "sequential link"
    mode = "chain"


class ToyEvalParams(PluginParams):
    scale: float = 1.0
    # a stage that fills a feature cache: it appends (key, event, time) lines to ``timeline`` as it starts,
    # says it filled the cache after ``fill_seconds`` and ends ``train_seconds`` later
    timeline: str | None = None
    fill_seconds: float = 0.0
    train_seconds: float = 0.0
    batch: Annotated[int, EXECUTION_ONLY] = 8  # how it runs, not what it gives (kept in the result's extra)


class ToyEval(DownstreamPlugin):
    """Accuracy = a deterministic function of the weights and the seed; per-item stats."""

    name = "toy_eval"
    summary = "weights-based accuracy"
    Params = ToyEvalParams

    def evaluate(self, upstream: ToyModel, corpus: Any, params: ToyEvalParams, ctx: Any) -> EvalResult:
        if params.timeline:
            _timed_fill(Path(params.timeline), params, ctx)
        rows = corpus.utterances("test")
        wavs = torch.zeros(len(rows), upstream.width, device=ctx.device)  # the model runs where the runner put it
        upstream(wavs, torch.full((len(rows),), upstream.width, device=ctx.device))
        w = float(upstream.layer.weight.abs().sum()) * params.scale
        correct = [int((w * 1000 + i + ctx.seed) % 3 != 0) for i in range(len(rows))]
        items = [{"id": r["id"], "stats": {"acc": [c, 1]}} for r, c in zip(rows, correct)]
        acc = 100.0 * sum(correct) / len(correct)
        predictions = [{"id": r["id"], "ref": "yes", "hyp": "yes" if c else "no"} for r, c in zip(rows, correct)]
        return EvalResult({"acc": acc}, {"acc": "higher"}, len(rows), items, [0.5, 0.5], extra={"batch": params.batch},
                          predictions=predictions)


def _timed_fill(timeline: Path, params: ToyEvalParams, ctx: Any) -> None:
    def mark(event: str) -> None:
        with open(timeline, "a") as f:
            f.write(f"{ctx.key} {event} {time.time()!r}\n")

    mark("start")
    time.sleep(params.fill_seconds)
    mark("filled")
    ctx.cache_filled()
    time.sleep(params.train_seconds)
    mark("end")


@hookimpl
def harness_register_corpus(registry):
    registry.add(ToyCorpus)


@hookimpl
def harness_register_upstream(registry):
    registry.add(ToyUpstream)


@hookimpl
def harness_register_finetune(registry):
    registry.add(ToyFinetune)


@hookimpl
def harness_register_merge(registry):
    registry.add(ToyMerge)
    registry.add(ToyChain)


@hookimpl
def harness_register_downstream(registry):
    registry.add(ToyEval)
