"""Stable fine-tuning: head-only for the first β of the steps, CNN frozen throughout, L2 towards θ0,
the "regular" ablation, and the supervised scenario end to end (a downstream's task, and pc)."""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import hookimpl
from harness.core.errors import StageError
from harness.core.interfaces import Batch, DownstreamPlugin, PluginParams, Task
from harness.core.manifest import PreparedCorpus
from harness.core.model_types import UpstreamOutput
from harness.core.registry import PluginManager
from harness.data.batching import FixedBatchSampler
from harness.data.waveforms import WaveformSet
from harness.training.loop import fit
from harness.training.specaug import SpecAugSettings, spec_augment
from harness.training.stable_ft import StableFineTuning, task_batch, training_loss
from harness.training.stable_ft_params import StableFTParams, resolve_task, train_config
from plugins.finetune.supervised import Supervised, SupervisedParams
from plugins.tasks import pc as pc_task
from tests.finetune_helpers import TinyUpstream, make_corpus, make_ctx


class SpeakerTask(Task):
    """Mean-pooled features -> speaker (cross-entropy); accuracy in percent."""

    name = "spk"
    label_fields = ("speaker",)
    metrics = {"acc": "higher"}
    primary_metric = "acc"

    def __init__(self, speakers: list[str]):
        self.speakers = speakers

    def build_head(self, input_dim: int) -> nn.Module:
        return nn.Linear(input_dim, len(self.speakers))

    def _logits(self, head, batch: Batch) -> torch.Tensor:
        mask = (torch.arange(batch.features.shape[1])[None] < batch.lengths[:, None]).float()[..., None]
        return head((batch.features * mask).sum(1) / batch.lengths[:, None].clamp(min=1))

    def _labels(self, batch: Batch) -> torch.Tensor:
        return torch.tensor([self.speakers.index(u["speaker"]) for u in batch.utterances])

    def loss(self, head, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(self._logits(head, batch), self._labels(batch))

    def predict(self, head, batch: Batch) -> list[dict]:
        hit = (self._logits(head, batch).argmax(-1) == self._labels(batch)).tolist()
        return [{"id": u["id"], "stats": {"acc": [int(h), 1]}} for u, h in zip(batch.utterances, hit)]

    def aggregate(self, records: list[dict]) -> dict[str, float]:
        return {"acc": 100.0 * sum(r["stats"]["acc"][0] for r in records) / len(records)}


class SpeakerDownstream(DownstreamPlugin):
    name = "spk"
    summary = "toy speaker task"
    Params = PluginParams

    def evaluate(self, upstream, corpus, params, ctx):
        raise NotImplementedError

    def make_task(self, corpus: PreparedCorpus, params: PluginParams) -> Task:
        return SpeakerTask(corpus.vocab["speakers"])


@hookimpl
def harness_register_downstream(registry):
    registry.add(SpeakerDownstream)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PreparedCorpus:
    return PreparedCorpus(make_corpus(tmp_path_factory.mktemp("toy_corpus")))


def run_stable(corpus: PreparedCorpus, **overrides):
    """Fine-tune a TinyUpstream on the speaker task; record which upstream tensors got gradients per step."""
    torch.manual_seed(0)
    upstream = TinyUpstream()
    theta0 = {k: v.clone() for k, v in upstream.state_dict().items()}
    task = SpeakerTask(corpus.vocab["speakers"])
    head = task.build_head(upstream.hidden_size)
    grads: dict[int, set[str]] = {}
    current = {"step": -1}
    snapshots = {}
    for name, p in upstream.named_parameters():  # before any parameter is frozen
        p.register_hook(lambda g, name=name: grads.setdefault(current["step"], set()).add(name))
    params = StableFTParams(**{"steps": 10, "lr": 0.01, "beta": 0.3, **overrides})
    stable = StableFineTuning(upstream, head, params)
    data = WaveformSet(corpus.utterances("train"))

    def before_step(step: int) -> None:
        current["step"] = step
        stable.before_step(step)
        snapshots[step] = {k: v.clone() for k, v in upstream.state_dict().items()}

    def loss_fn(batch):
        out = stable.forward(batch.wavs, batch.wav_lengths)
        return task.loss(head, task_batch(out, batch.rows)) + stable.penalty()

    sampler = FixedBatchSampler(len(data), 4, seed=0)
    fit(stable.model, loss_fn, sampler, data.collate, train_config(params), before_step=before_step)
    return upstream, theta0, grads, snapshots


def test_head_only_for_beta_of_the_steps_and_cnn_frozen_throughout(corpus):
    upstream, theta0, grads, snapshots = run_stable(corpus)
    assert upstream.layerdrop == 0.0
    assert all(s not in grads for s in range(3)), "the upstream got gradients during the head-only steps"
    for k in theta0:
        assert torch.equal(snapshots[3][k], theta0[k]), f"{k} changed before step 3"
    cnn = {"cnn.weight", "cnn.bias"}
    assert all(grads[s] == {n for n, _ in upstream.named_parameters()} - cnn for s in range(3, 10))
    for k in cnn:
        assert torch.equal(upstream.state_dict()[k], theta0[k])
    assert not torch.equal(upstream.state_dict()["proj.weight"], theta0["proj.weight"])


def test_regular_ablation_trains_everything_from_step_0_and_l2_keeps_weights_near_theta0(corpus):
    upstream, theta0, grads, _ = run_stable(corpus, beta=0.0, freeze_cnn=False)
    assert "cnn.weight" in grads[0] and "proj.weight" in grads[0]
    assert not torch.equal(upstream.state_dict()["cnn.weight"], theta0["cnn.weight"])

    def distance(model):
        return sum((model.state_dict()[k] - theta0[k]).pow(2).sum() for k in theta0 if not k.startswith("cnn"))

    free, _, _, _ = run_stable(corpus)
    held, _, _, _ = run_stable(corpus, l2_lambda=100.0)
    assert distance(held) < 0.5 * distance(free)


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_the_l2_penalty_and_its_gradient_equal_autograd_of_the_plain_sum(device):
    torch.manual_seed(0)
    params = [torch.randn(*shape, device=device, requires_grad=True) for shape in ((7, 5), (5,), (3, 4, 2))]
    anchor = [p.detach() + 0.1 * torch.randn_like(p) for p in params]
    upstream = TinyUpstream()
    stable = StableFineTuning(upstream, nn.Linear(1, 1), StableFTParams(l2_lambda=0.3, beta=0.0))
    stable.trainable, stable.anchor = params, anchor
    value = stable.penalty()
    value.backward()
    ours = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    reference = 0.3 * sum((p - a).pow(2).sum() for p, a in zip(params, anchor, strict=True))
    reference.backward()
    assert torch.allclose(value, reference, rtol=1e-6)
    for got, want in zip(ours, [p.grad for p in params], strict=True):
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    stable.upstream_training = False  # the head-only steps: no penalty
    assert stable.penalty() == 0.0


def test_supervised_plugin_on_a_downstream_task_and_on_pc(corpus, tmp_path):
    manager = PluginManager(modules=[(sys.modules[__name__], "tests", "0"), (pc_task, "harness", "0")],
                            entry_points=False)
    torch.manual_seed(0)
    upstream = TinyUpstream()
    theta0 = {k: v.clone() for k, v in upstream.state_dict().items()}
    params = SupervisedParams(task="spk", corpus="toy", steps=12, lr=0.01, batch_seconds=3.0, eval_every=6)
    ctx = make_ctx(tmp_path / "spk", manager)
    result = Supervised().finetune(upstream, {"toy": corpus}, params, ctx)
    metrics = result.metrics
    assert set(metrics) == {"acc"} and 0 <= metrics["acc"] <= 100
    assert result.directions == {"acc": "higher"}  # the task's own directions
    assert torch.equal(upstream.cnn.weight, theta0["cnn.weight"])
    assert not torch.equal(upstream.proj.weight, theta0["proj.weight"])
    assert any(m.startswith("fine-tuned on spk: best dev") for m in ctx.messages)

    pc = SupervisedParams(task="pc", steps=30, lr=0.05, batch_seconds=3.0, beta=0.5)
    torch.manual_seed(0)
    metrics = Supervised().finetune(TinyUpstream(), {"toy": corpus}, pc, make_ctx(tmp_path / "pc", manager)).metrics
    assert metrics["acc"] > 75.0, metrics  # tone vs noise frames are easy (chance: about 50)

    with pytest.raises(StageError, match=r"no task named 'sid': name a task or downstream plugin \(pc, spk\)\."):
        Supervised().finetune(TinyUpstream(), {"toy": corpus}, SupervisedParams(task="sid", steps=1), ctx)
    with pytest.raises(StageError, match=r"no task named 'spkk'.*\(pc, spk\); did you mean 'spk'\?"):
        Supervised().finetune(TinyUpstream(), {"toy": corpus}, SupervisedParams(task="spkk", steps=1), ctx)


def test_a_task_name_resolves_to_a_task_plugin_before_a_downstream(corpus, tmp_path):
    """``pc`` comes from its task plugin even when a downstream has the same name; nothing in the
    fine-tuning code knows the name."""

    class PcDownstream(SpeakerDownstream):
        name = "pc"

    module = types.ModuleType("pc_clash")

    @hookimpl
    def harness_register_downstream(registry):
        registry.add(PcDownstream)

    module.harness_register_downstream = harness_register_downstream
    manager = PluginManager(modules=[(module, "tests", "0"), (pc_task, "harness", "0")], entry_points=False)
    task = resolve_task(TinyUpstream(), corpus, "pc", {}, make_ctx(tmp_path, manager))
    assert isinstance(task, pc_task.FramePhoneTask) and task.frame_shift == TinyUpstream.frame_shift
    with pytest.raises(Exception, match="task_params of pc"):
        resolve_task(TinyUpstream(), corpus, "pc", {"phones": 3}, make_ctx(tmp_path, manager))


def test_the_training_loss_applies_the_tasks_specaugment_and_only_then(corpus):
    task = SpeakerTask(corpus.vocab["speakers"])
    head = task.build_head(16)
    torch.manual_seed(1)
    out = UpstreamOutput(hidden_states=[torch.randn(3, 40, 16)], lengths=torch.tensor([40, 31, 22]))
    rows = corpus.utterances("train")[:3]
    plain = task.loss(head, task_batch(out, rows))
    assert torch.equal(training_loss(task, head, out, rows), plain)  # no SpecAugment: the plain loss

    task.specaug = SpecAugSettings(time_warp_window=0, num_freq_masks=2, num_time_masks=2)
    torch.manual_seed(7)
    augmented = training_loss(task, head, out, rows)
    torch.manual_seed(7)
    batch = task_batch(out, rows)
    expected = task.loss(head, replace(batch, features=spec_augment(batch.features, batch.lengths, task.specaug)))
    assert torch.equal(augmented, expected)
    assert not torch.equal(augmented, plain)
