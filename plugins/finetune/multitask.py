"""Multitask stable fine-tuning (MTF, Speech-FT Section 2.3 and Table 4): one head per task, trained
jointly on mixed batches.

Every optimizer step draws one batch from each task's training data (the paper: 2 utterances of PR
on LibriSpeech and 2 of SID on VoxCeleb1 per step); the waveforms of all tasks go through the
upstream in one padded forward pass, each head sees its own rows of the last hidden state, and the
loss is the weighted sum of the task losses. Stable fine-tuning applies to the shared upstream.
The dev checkpoint is selected on the primary metric of ``select_on`` (default: the first task);
all tasks' dev metrics are reported as ``<task>.<metric>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field
from torch import nn

from harness import hookimpl
from harness.api import (
    DynamicBatchSampler,
    FinetunePlugin,
    FinetuneResult,
    MixedBatchSampler,
    PluginParams,
    PreparedCorpus,
    StableFineTuning,
    StableFTParams,
    StageContext,
    StageError,
    Task,
    UpstreamModel,
    WaveBatch,
    WaveformSet,
    fit,
    pad_waves,
    pick_corpus,
    resolve_task,
    split_rows,
    task_batch,
    task_metrics_on_waveforms,
    train_config,
)


class TaskSpec(PluginParams):
    task: str = Field(description="a downstream plugin name or pc")
    corpus: str | None = Field(None, description="the recipe corpus of this task")
    weight: float = Field(1.0, ge=0, description="weight of this task's loss")
    batch_seconds: float | None = Field(None, gt=0, description="padded seconds per batch of this task")
    max_items: int | None = Field(None, ge=1)
    task_params: dict[str, Any] = Field(default_factory=dict)


class MultitaskParams(StableFTParams):
    tasks: list[TaskSpec] = Field(min_length=1, description="the tasks trained jointly")
    select_on: str | None = Field(None, description="task whose primary dev metric selects the checkpoint")


@dataclass
class MixedBatch:
    waves: WaveBatch
    parts: list[tuple[int, int, int]]  # (task index, first row, end row) within ``waves``


class Multitask(FinetunePlugin[MultitaskParams]):
    name = "multitask"
    version = "1"
    summary = "Multitask stable fine-tuning (MTF): one head per task on mixed batches"

    def finetune(
        self, upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: MultitaskParams, ctx: StageContext
    ) -> FinetuneResult:
        names = [spec.task for spec in params.tasks]
        if len(set(names)) != len(names):
            raise StageError(f"multitask lists a task twice ({', '.join(names)}); list each task once.")
        select = params.select_on or names[0]
        if select not in names:
            raise StageError(f"multitask select_on {select!r} is not among its tasks ({', '.join(names)}).")
        device = ctx.device
        tasks: list[Task] = []
        train_sets: list[WaveformSet] = []
        dev_sets: list[WaveformSet] = []
        samplers = []
        default_seconds = params.batch_seconds / len(params.tasks)
        for k, spec in enumerate(params.tasks):
            corpus = pick_corpus(corpora, spec.corpus, f"multitask task {spec.task}")
            task = resolve_task(upstream, corpus, spec.task, spec.task_params, ctx)
            tasks.append(task)
            train_sets.append(WaveformSet(split_rows(corpus, spec.task, "train"), params.max_seconds))
            dev_sets.append(WaveformSet(split_rows(corpus, spec.task, "dev", params.dev_items), params.max_seconds))
            seconds = spec.batch_seconds or default_seconds
            samplers.append(
                DynamicBatchSampler(train_sets[-1].lengths, seconds, ctx.seed + k, max_items=spec.max_items)
            )
        heads = nn.ModuleDict({f"t{k}": t.build_head(upstream.hidden_size) for k, t in enumerate(tasks)})
        stable = StableFineTuning(upstream, heads, params)
        stable.model.to(device)
        mixed = MixedBatchSampler(samplers, [len(s) for s in train_sets])

        def collate(indices: list[int]) -> MixedBatch:
            waves, rows, parts = [], [], []
            for k, local in enumerate(mixed.split(indices)):
                if local:
                    parts.append((k, len(rows), len(rows) + len(local)))
                    waves += [train_sets[k].wave(i) for i in local]
                    rows += [train_sets[k].rows[i] for i in local]
            wavs, lengths = pad_waves(waves)
            return MixedBatch(WaveBatch(wavs, lengths, rows), parts)

        def loss_fn(batch: MixedBatch) -> torch.Tensor:
            waves = batch.waves.to(device)
            out = stable.forward(waves.wavs, waves.wav_lengths)
            total = stable.penalty()
            for k, a, b in batch.parts:
                states = [h[a:b, : int(out.lengths[a:b].max())] for h in out.hidden_states[-1:]]
                sub = type(out)(hidden_states=states, lengths=out.lengths[a:b])
                total = total + params.tasks[k].weight * tasks[k].loss(heads[f"t{k}"], task_batch(sub, waves.rows[a:b]))
            return total

        def evaluate() -> dict[str, float]:
            metrics: dict[str, float] = {}
            for k, task in enumerate(tasks):
                seconds = params.tasks[k].batch_seconds or default_seconds
                got = task_metrics_on_waveforms(stable.forward, heads[f"t{k}"], task, dev_sets[k], seconds, device)
                metrics.update({f"{names[k]}.{m}": v for m, v in got.items()})
            return metrics

        chosen = tasks[names.index(select)]
        primary = (f"{select}.{chosen.primary_metric}", chosen.metrics[chosen.primary_metric])
        result = fit(stable.model, loss_fn, mixed, collate, train_config(params), ctx, evaluate, primary,
                     stable.before_step)  # fmt: skip
        ctx.log(
            f"multitask fine-tuning on {', '.join(names)}: best dev {result.best_metrics} at step {result.best_step}"
        )
        directions = {f"{names[k]}.{m}": d for k, task in enumerate(tasks) for m, d in task.metrics.items()}
        return FinetuneResult(result.best_metrics, directions)


@hookimpl
def harness_register_finetune(registry):
    registry.add(Multitask)
