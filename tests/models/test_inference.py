"""harness.models.inference: length-sorted batches within a cap; outputs per item equal to single runs."""

from __future__ import annotations

import numpy as np
import torch

from harness.models.inference import batched_forward, fixed_batches, length_sorted_batches
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin


def test_length_sorted_batches_respect_the_cap():
    lengths = [16000, 3000, 48000, 5000, 200000, 15000, 7000, 31000]
    batches = length_sorted_batches(lengths, max_seconds=3.0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        longest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * longest <= 3.0 * 16000
    assert [4] in batches  # longer than the cap: alone, never dropped
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    assert fixed_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert length_sorted_batches([], 1.0) == []


def test_batched_forward_matches_single_utterances():
    model = Wav2Vec2Plugin().build(Wav2Vec2Params(preset="tiny"), seed=1)
    model.train()
    rng = np.random.default_rng(0)
    wavs = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (9000, 3000, 16000, 4000, 12000)]
    seen = {}
    for i, hidden in batched_forward(model, wavs, max_seconds=1.5, layers=[0, -1]):
        assert i not in seen
        seen[i] = hidden
    assert sorted(seen) == list(range(len(wavs))) and model.training  # mode restored
    model.eval()
    for i, wav in enumerate(wavs):
        with torch.no_grad():
            ref = model(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
        n = int(ref.lengths[0])
        assert [h.shape for h in seen[i]] == [(n, 96), (n, 96)]
        for got, want in zip(seen[i], (ref.hidden_states[0][0], ref.hidden_states[-1][0])):
            assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())


def test_an_accelerator_batch_crossing_in_one_copy_trims_each_item_as_the_per_item_copies_do():
    from harness.models.inference import trimmed

    g = torch.Generator().manual_seed(0)
    hidden = [torch.randn(3, 7, 4, generator=g).to(torch.bfloat16) for _ in range(2)]  # as under autocast
    frames = [5, 0, 3]  # one utterance too short for a frame; none fills the padded 7
    one_copy, per_copy = trimmed(hidden, frames, batch_copy=True), trimmed(hidden, frames, batch_copy=False)
    assert [[t.shape for t in item] for item in one_copy] == [[(5, 4)] * 2, [(0, 4)] * 2, [(3, 4)] * 2]
    for a, b in zip(one_copy, per_copy, strict=True):
        assert all(x.dtype == torch.float32 and torch.equal(x, y) for x, y in zip(a, b, strict=True))
