"""Stable fine-tuning (Speech-FT, Section 2.2), shared by every fine-tuning scenario.

- For the first ``beta`` of the steps only the task head(s) train: the upstream's parameters have
  ``requires_grad=False`` (no gradient, no AdamW update, no weight decay) and the upstream runs in
  eval mode without building a graph, so the head learns on the features a probe would see.
- The downsampling module (:meth:`UpstreamModel.downsampling_module`, the CNN) stays frozen
  throughout (``freeze_cnn``); layer drop is off.
- Optionally an L2 penalty ``l2_lambda · ||θ − θ0||²`` over the trainable upstream parameters (the
  "regularization" baseline of Table 7; stable fine-tuning still applies).
- A task with SpecAugment (``task_params: {specaug: true}`` for ``asr`` and ``sf``) has it applied to
  the last hidden state while training, never in dev evaluation.
- The "regular" fine-tuning ablation is ``beta: 0`` with ``freeze_cnn: false``.

:class:`StableFTParams` holds the knobs every scenario shares; scenarios subclass it.
:func:`resolve_task` turns a scenario's ``task:`` name into a :class:`Task` through the plugins (a
registered task such as ``pc``, else a downstream's task); no task name is known here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from harness.core.interfaces import Batch, Task
from harness.core.manifest import PreparedCorpus
from harness.core.model_types import UpstreamModel, UpstreamOutput
from harness.core.stage import StageContext
from harness.data.batching import DynamicBatchSampler
from harness.data.waveforms import AUTOTUNE_BUCKET_SECONDS, SAMPLE_RATE, WaveBatch, WaveformSet
from harness.models.upstream_speed import compile_module
from harness.training.loop import FitResult, fit
from harness.training.specaug import augmented
from harness.training.stable_ft_params import StableFTParams, split_rows, train_config


def training_waveforms(rows: list[dict[str, Any]], params: StableFTParams, device: torch.device) -> WaveformSet:
    """A fine-tuning split's waveforms: the first ``max_seconds`` of each, and with cuDNN autotuning or CUDA graphs
    on CUDA, batches padded up to whole :data:`AUTOTUNE_BUCKET_SECONDS` so that their shapes repeat."""
    bucketed = (params.cudnn_autotune or params.compile == "graphs") and device.type == "cuda"
    bucket = int(AUTOTUNE_BUCKET_SECONDS * SAMPLE_RATE) if bucketed else 1
    return WaveformSet(rows, params.max_seconds, pad_multiple=bucket)


class StableFineTuning:
    """Wraps an upstream and its task head(s) for :func:`harness.training.loop.fit`.

    ``model`` (upstream + heads) is what ``fit`` trains; pass :meth:`before_step` to ``fit`` and
    run the upstream through :meth:`forward`; add :meth:`penalty` to the loss.
    """

    def __init__(self, upstream: UpstreamModel, heads: nn.Module, params: StableFTParams):
        self.upstream = upstream
        self.params = params
        upstream.set_layerdrop(0.0)
        upstream.set_gradient_checkpointing(params.gradient_checkpointing)
        self.graphs = params.compile == "graphs"
        if params.compile:
            compile_module(upstream, graphs=self.graphs)
        cnn = upstream.downsampling_module() if params.freeze_cnn else None
        frozen = {id(p) for p in cnn.parameters()} if cnn is not None else set()
        for p in upstream.parameters():
            p.requires_grad_(id(p) not in frozen)
        self.trainable = [p for p in upstream.parameters() if id(p) not in frozen]
        self.frozen = [p for p in upstream.parameters() if id(p) in frozen]
        self.head_only_steps = int(round(params.beta * params.steps))
        self.upstream_training = True
        self.anchor = [p.detach().clone() for p in self.trainable] if params.l2_lambda > 0 else None
        self.model = nn.ModuleDict({"upstream": upstream, "heads": heads})

    def before_step(self, step: int) -> None:
        if self.graphs:  # a new step: the last step's graph outputs are no longer read
            torch.compiler.cudagraph_mark_step_begin()
        train_upstream = step >= self.head_only_steps
        if train_upstream != self.upstream_training or step == 0:
            for p in self.trainable:
                p.requires_grad_(train_upstream)
            self.upstream_training = train_upstream
        self.upstream.train(train_upstream)

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor, **options: Any) -> UpstreamOutput:
        """The upstream's forward (``options`` as it takes them, e.g. ``masked_frames``), without a graph
        while only the head trains."""
        if self.upstream_training and torch.is_grad_enabled():
            return self.upstream(wavs, wav_lengths, **options)
        with torch.no_grad():
            return self.upstream(wavs, wav_lengths, **options)

    def penalty(self) -> torch.Tensor | float:
        """``l2_lambda · ||θ − θ0||²`` over the trainable upstream parameters (0 while they are frozen)."""
        if self.anchor is None or not self.upstream_training:
            return 0.0
        return self.params.l2_lambda * _SquaredDistance.apply(self.anchor, *self.trainable)


class _SquaredDistance(torch.autograd.Function):
    """``Σ ||p − a||²`` over lists of tensors, forward and backward each a few multi-tensor kernels.

    Written out because autograd of the plain sum runs three kernels per tensor each way (about 2,000
    launches a step for a Base model, and again for every accumulated batch), which on a GPU is host
    time. On the 2-core CPU, forward and backward for HuBERT Base took 102–156 ms against 141–212 ms
    (four alternating runs). Nothing is kept for the backward pass but the parameters themselves:
    the differences are formed again.
    """

    @staticmethod
    def forward(ctx: Any, anchor: list[torch.Tensor], *params: torch.Tensor) -> torch.Tensor:
        ctx.anchor = anchor
        ctx.save_for_backward(*params)
        diffs = torch._foreach_sub([p.float() for p in params], [a.float() for a in anchor])
        return torch.stack(torch._foreach_norm(diffs)).pow(2).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        params = ctx.saved_tensors
        diffs = torch._foreach_sub(list(params), ctx.anchor)
        torch._foreach_mul_(diffs, 2 * grad)
        return (None, *diffs)


def task_batch(out: UpstreamOutput, rows: list[dict[str, Any]]) -> Batch:
    """The batch a task head sees during fine-tuning: the *last* hidden state."""
    return Batch(features=out.hidden_states[-1], lengths=out.lengths, utterances=rows)


def training_loss(task: Task, head: nn.Module, out: UpstreamOutput, rows: list[dict[str, Any]]) -> torch.Tensor:
    """The task's loss on :func:`task_batch`, after the task's SpecAugment when it has one (as s3prl's
    experts augment the upstream's features while fine-tuning, e.g. Speech-FT's TED-LIUM ASR)."""
    return task.loss(head, augmented(task, task_batch(out, rows)))


def task_metrics_on_waveforms(
    forward: Callable[[torch.Tensor, torch.Tensor], UpstreamOutput],
    head: nn.Module,
    task: Task,
    data: WaveformSet,
    batch_seconds: float,
    device: torch.device,
) -> dict[str, float]:
    """The task's metrics on every utterance of ``data``, each batch run through ``forward`` (the
    upstream being fine-tuned) and ``head``; eval mode and no-grad are the caller's."""
    records: list[dict[str, Any]] = []
    for indices in data.batches(batch_seconds):
        batch: WaveBatch = data.collate(indices).to(device)
        out = forward(batch.wavs, batch.wav_lengths)
        records.extend(task.predict(head, task_batch(out, batch.rows)))
    return task.aggregate(records)


def finetune_on_task(
    upstream: UpstreamModel,
    task: Task,
    corpus: PreparedCorpus,
    split_name: str,
    params: StableFTParams,
    ctx: StageContext,
    primary: tuple[str, str],
) -> FitResult:
    """Stable fine-tuning of ``upstream`` with ``task``'s head and loss on ``corpus`` (train split,
    best on ``dev`` by ``primary``); ``split_name`` picks the corpus's task splits."""
    device = ctx.device
    train = training_waveforms(split_rows(corpus, split_name, "train"), params, device)
    dev = training_waveforms(split_rows(corpus, split_name, "dev", params.dev_items), params, device)
    head = task.build_head(upstream.hidden_size)
    stable = StableFineTuning(upstream, head, params)
    stable.model.to(device)

    def loss_fn(batch: WaveBatch) -> torch.Tensor:
        batch = batch.to(device)
        out = stable.forward(batch.wavs, batch.wav_lengths)
        return training_loss(task, head, out, batch.rows) + stable.penalty()

    def evaluate() -> dict[str, float]:
        return task_metrics_on_waveforms(stable.forward, head, task, dev, params.batch_seconds, device)

    sampler = DynamicBatchSampler(train.lengths, params.batch_seconds, ctx.seed, max_items=params.max_items)
    cfg = replace(train_config(params), prefetch=True)  # later steps' batches are read and padded meanwhile
    return fit(stable.model, loss_fn, sampler, train.collate, cfg, ctx, evaluate, primary, stable.before_step)
