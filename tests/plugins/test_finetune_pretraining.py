"""Continued pre-training: span masks, MFCC and layer k-means targets, training and resume of the targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.core.errors import StageError
from harness.core.manifest import PreparedCorpus
from harness.core.registry import PluginManager
from harness.training.pseudo_labels import KMeans, mfcc_frames
from plugins.finetune._pretraining import mask_fill, span_mask
from plugins.finetune.continued_pretraining import ContinuedPretraining, ContinuedPretrainingParams
from tests.finetune_helpers import TinyUpstream, make_corpus, make_ctx


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PreparedCorpus:
    return PreparedCorpus(make_corpus(tmp_path_factory.mktemp("toy_corpus_cp"), n=16))


def test_span_mask_follows_hubert_counts():
    g = torch.Generator().manual_seed(0)
    masks = [span_mask(100, 0.8, 10, g) for _ in range(200)]
    share = float(torch.stack(masks).float().mean())
    assert 0.45 < share < 0.65  # 8 spans of 10 frames over 100, with overlaps
    assert span_mask(5, 0.8, 10, g).all() and not span_mask(0, 0.8, 10, g).numel()


def test_mfcc_frames_are_20ms_and_kmeans_separates_tone_from_noise():
    t = np.arange(16000) / 16000
    wav = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 300 * t), 0.3 * np.random.default_rng(0).standard_normal(16000))
    feats = mfcc_frames(wav.astype(np.float32), 0.02)
    assert feats.shape == (49, 39)  # 98 frames of 10 ms averaged in pairs
    units = KMeans(2, seed=0).fit(feats).assign(feats)
    assert len(set(units[3:20])) == 1 and len(set(units[30:46])) == 1 and units[10] != units[40]


def test_pretraining_from_scratch_with_mfcc_targets_and_with_layer_kmeans(corpus, tmp_path):
    manager = PluginManager(entry_points=False)
    torch.manual_seed(0)
    upstream = TinyUpstream()
    before = upstream.proj.weight.clone()
    params = ContinuedPretrainingParams(
        targets="mfcc", beta=0.0, steps=6, lr=0.01, batch_seconds=3.0, n_clusters=8, mask_prob=0.5, mask_length=3
    )
    ctx = make_ctx(tmp_path / "mfcc", manager)
    result = ContinuedPretraining().finetune(upstream, {"toy": corpus}, params, ctx)
    metrics = result.metrics
    assert set(metrics) == {"masked_acc", "masked_loss"} and 0 <= metrics["masked_acc"] <= 100
    assert result.directions == {"masked_acc": "higher", "masked_loss": "lower"}
    assert not torch.equal(upstream.proj.weight, before)
    assert any(m.startswith("mfcc targets: 8 units") for m in ctx.messages)
    # a rerun in the same work folder (as after a kill) reuses the targets and the finished run
    again = make_ctx(tmp_path / "mfcc", manager)
    ContinuedPretraining().finetune(TinyUpstream(), {"toy": corpus}, params, again)
    assert "reusing the mfcc targets computed before the interruption" in again.messages

    kmeans = params.model_copy(update={"targets": "auto", "layer": 1})
    ctx = make_ctx(tmp_path / "km", manager)
    ContinuedPretraining().finetune(TinyUpstream(), {"toy": corpus}, kmeans, ctx)
    assert any(m.startswith("kmeans targets: 8 units") for m in ctx.messages)
    with pytest.raises(StageError, match="has no pre-training codebook"):
        codebook = params.model_copy(update={"targets": "codebook"})
        ContinuedPretraining().finetune(TinyUpstream(), {"toy": corpus}, codebook, make_ctx(tmp_path / "cb", manager))


def test_codebook_targets_are_the_hubert_models_own_pseudo_labels(corpus, tmp_path):
    from harness.data.waveforms import WaveformSet
    from plugins.finetune._pretraining import TARGETS_FILE
    from plugins.upstreams._hubert_model import PRESETS, HubertUpstream

    torch.manual_seed(0)
    upstream = HubertUpstream({**PRESETS["tiny"], "codebook": [10, 8]})
    with torch.no_grad():
        upstream.label_embs.normal_()
    upstream.eval()
    data = WaveformSet(corpus.utterances("train"))
    batch = data.collate(list(range(3)))
    expected, lengths = upstream.pseudo_labels(batch.wavs, batch.wav_lengths)
    assert expected.max() < 10 and len(set(expected[0, : int(lengths[0])].tolist())) > 1

    params = ContinuedPretrainingParams(targets="auto", beta=0.0, steps=2, lr=1e-3, batch_seconds=3.0,
                                        mask_prob=0.5, mask_length=3)
    ctx = make_ctx(tmp_path / "codebook", PluginManager(entry_points=False))
    ContinuedPretraining().finetune(upstream, {"toy": corpus}, params, ctx)
    assert any(m.startswith("codebook targets: 10 units") for m in ctx.messages)
    assert "masked frames get the mask embedding" in ctx.messages  # HuBERT's own masking (auto)
    targets = torch.load(ctx.work_dir / TARGETS_FILE, weights_only=True)
    for j, row in enumerate(batch.rows):
        assert targets["units"][row["id"]].tolist() == expected[j, : int(lengths[j])].tolist()


def test_hubert_masks_frames_with_its_mask_embedding_as_in_pre_training(corpus):
    from harness.data.waveforms import WaveformSet
    from plugins.upstreams._hubert_model import PRESETS, HubertUpstream

    torch.manual_seed(0)
    upstream = HubertUpstream(PRESETS["tiny"]).eval()
    batch = WaveformSet(corpus.utterances("train")).collate([0, 1])
    with torch.no_grad():
        plain = upstream(batch.wavs, batch.wav_lengths).hidden_states
        n = plain[0].shape[1]
        unmasked = upstream(batch.wavs, batch.wav_lengths, masked_frames=torch.zeros(2, n, dtype=torch.bool))
        assert all(torch.equal(a, b) for a, b in zip(unmasked.hidden_states, plain))
        # every frame masked: the encoder sees the mask embedding alone, whatever the audio
        every = torch.ones(2, n, dtype=torch.bool)
        speech = upstream(batch.wavs, batch.wav_lengths, masked_frames=every).hidden_states
        noise = upstream(0.1 * torch.randn_like(batch.wavs), batch.wav_lengths, masked_frames=every).hidden_states
        torch.testing.assert_close(speech[-1], noise[-1])
        assert not torch.allclose(speech[-1], plain[-1])
    assert mask_fill(upstream, "auto") == "embedding" and mask_fill(TinyUpstream(), "auto") == "noise"
    with pytest.raises(StageError, match="lacks; use noise or zeros"):
        mask_fill(TinyUpstream(), "embedding")
