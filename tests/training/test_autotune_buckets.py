"""Opt-in cuDNN autotuning: batches padded up to half-second buckets on CUDA, results unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.core.plan import stage_key
from harness.data.waveforms import AUTOTUNE_BUCKET_SECONDS, SAMPLE_RATE, pad_waves
from harness.training.loop import TrainConfig
from harness.training.stable_ft import training_waveforms
from harness.training.stable_ft_params import train_config
from plugins.finetune.supervised import SupervisedParams
from plugins.upstreams.decoar2 import Decoar2Params, Decoar2Plugin
from plugins.upstreams.hubert import HubertParams, HubertPlugin

BUCKET = int(AUTOTUNE_BUCKET_SECONDS * SAMPLE_RATE)


def _waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n).astype(np.float32) for n in (9000, 16001, 5000)]


def test_padding_to_a_multiple_keeps_the_samples_and_the_lengths():
    waves = _waves()
    plain, plain_lengths = pad_waves(waves)
    bucketed, lengths = pad_waves(waves, BUCKET)
    assert plain.shape[1] == 16001 and bucketed.shape[1] == 3 * BUCKET
    assert torch.equal(lengths, plain_lengths)
    assert torch.equal(bucketed[:, :16001], plain) and not bucketed[:, 16001:].any()
    assert pad_waves(waves[:1], BUCKET)[0].shape[1] == 2 * BUCKET  # 9000 samples: two buckets
    assert pad_waves([], BUCKET)[0].shape == (0, 0)


@pytest.mark.parametrize("plugin", ["hubert", "decoar2"])
def test_the_extra_padding_leaves_every_valid_frame_as_it_was(plugin):
    model = (HubertPlugin().build(HubertParams(preset="tiny"), seed=1) if plugin == "hubert"
             else Decoar2Plugin().build(Decoar2Params(preset="tiny"), seed=1)).eval()
    with torch.no_grad():
        want = model(*pad_waves(_waves()))
        got = model(*pad_waves(_waves(), BUCKET))
    assert torch.equal(got.lengths, want.lengths)
    for a, b in zip(got.hidden_states, want.hidden_states, strict=True):
        for i, n in enumerate(want.lengths.tolist()):
            assert (a[i, :n] - b[i, :n]).abs().max() < 1e-5


def test_only_an_autotuned_run_on_cuda_pads_to_buckets():
    rows = [{"id": "a", "duration": 1.0}]
    on = SupervisedParams(task="pr", cudnn_autotune=True)
    assert training_waveforms(rows, on, torch.device("cuda")).pad_multiple == BUCKET
    assert training_waveforms(rows, on, torch.device("cpu")).pad_multiple == 1  # the CPU has no cuDNN
    off = SupervisedParams(task="pr")
    assert training_waveforms(rows, off, torch.device("cuda")).pad_multiple == 1
    assert train_config(on).cudnn_autotune and not train_config(off).cudnn_autotune


def test_autotuning_is_off_by_default_and_keeps_stage_keys_and_checkpoints_as_they_were():
    off, on = SupervisedParams(task="pr"), SupervisedParams(task="pr", cudnn_autotune=True)
    assert "cudnn_autotune" not in off.model_dump(mode="json")
    key = lambda p: stage_key("finetune", "supervised", "1", p.model_dump(mode="json"), {}, 0)  # noqa: E731
    assert key(off) == key(SupervisedParams(task="pr", cudnn_autotune=False)) != key(on)
    # a checkpoint written before the field existed resumes: the field is not in the config's repr
    assert repr(TrainConfig(steps=3, lr=1.0, cudnn_autotune=True)) == repr(TrainConfig(steps=3, lr=1.0))


def test_autotuning_asked_for_on_the_cpu_says_it_does_nothing_there(caplog):
    from harness.data.batching import DynamicBatchSampler
    from harness.training.loop import fit

    model = torch.nn.Linear(4, 1)
    cfg = TrainConfig(steps=1, lr=1e-3, checkpoint_minutes=None, cudnn_autotune=True)
    with caplog.at_level("INFO"):
        fit(model, lambda b: model(b).square().mean(), DynamicBatchSampler([1.0] * 2, 2.0, seed=0),
            lambda idx: torch.randn(len(idx), 4), cfg)
    assert "cudnn_autotune: cuDNN runs on CUDA devices only; this run on cpu trains without it" in caplog.text


@pytest.mark.parametrize("autotune", [False, True])
@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuDNN needs a CUDA device")
def test_cudnn_autotunes_during_an_autotuned_run_only(autotune):
    from harness.data.batching import DynamicBatchSampler
    from harness.training.loop import fit

    model = torch.nn.Conv1d(1, 4, 3).cuda()
    seen = []

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        seen.append(torch.backends.cudnn.benchmark)
        return model(batch.cuda()[:, None]).square().mean()

    sampler = DynamicBatchSampler([1.0] * 4, 2.0, seed=0)
    cfg = TrainConfig(steps=2, lr=1e-3, checkpoint_minutes=None, cudnn_autotune=autotune)
    before = torch.backends.cudnn.benchmark
    fit(model, loss_fn, sampler, lambda idx: torch.randn(len(idx), 16), cfg)
    assert seen and set(seen) == {autotune or before}
    assert torch.backends.cudnn.benchmark == before  # set for the run only
