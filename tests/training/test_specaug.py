"""SpecAugment on probe features: identical to s3prl's given the same random state, on for SUPERB's
ASR and SF protocols only, and only while a probe trains."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from harness.evaluation.ctc_probe import SF_SPECAUG, CTCProbeParams
from harness.training.specaug import SpecAugSettings, spec_augment, time_masks
from plugins.downstreams.sf import SFParams

s3prl = pytest.importorskip("s3prl", reason="s3prl (pip install --no-deps s3prl==0.4.18) provides the reference")


@pytest.fixture(scope="module")
def s3prl_specaug():
    """s3prl's ``downstream/specaug.py``, loaded alone (it imports pandas and torchaudio without using them)."""
    stubbed = ("pandas", "torchaudio")
    saved = {name: sys.modules.get(name) for name in stubbed}
    sys.modules.update({name: types.ModuleType(name) for name in stubbed})
    try:
        path = Path(s3prl.__file__).parent / "downstream" / "specaug.py"
        spec = importlib.util.spec_from_file_location("s3prl_specaug", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, module_before in saved.items():
            if module_before is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module_before
    return module


def _batch(seed: int, lengths: list[int], dim: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(len(lengths), max(lengths), dim)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n, dim, generator=g)
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_s3prl_specaug_with_superbs_asr_and_sf_setting(s3prl_specaug, seed):
    x, lengths = _batch(seed, [120, 87, 9, 64])
    reference = s3prl_specaug.SpecAug(
        apply_time_warp=True, time_warp_window=5, apply_freq_mask=True, freq_mask_width_range=(0, 50),
        num_freq_mask=4, apply_time_mask=True, time_mask_width_range=(0, 40), num_time_mask=2,
    )  # fmt: skip
    torch.manual_seed(100 + seed)
    expected, _ = reference([x[i, :n].clone() for i, n in enumerate(lengths.tolist())], lengths)
    torch.manual_seed(100 + seed)
    ours = spec_augment(x.clone(), lengths, SpecAugSettings())
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[i, :n], expected[i], rtol=1e-5, atol=1e-5)
    # something was masked: whole feature columns of an utterance, and whole frames
    assert (ours[0, :120] == 0).all(dim=0).any() and (ours[0, :120] == 0).all(dim=1).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_s3prl_specaug_with_superbs_adaptive_sf_setting(s3prl_specaug, seed):
    x, lengths = _batch(seed, [300, 211, 40, 160])
    reference = s3prl_specaug.SpecAug(
        apply_time_warp=True, time_warp_window=5, apply_freq_mask=True, freq_mask_width_range=(0, 50),
        num_freq_mask=4, apply_time_mask=True, time_mask_width_range=(0, 40), num_time_mask=2,
        adaptive=True, adaptive_number_ratio=0.04, adaptive_size_ratio=0.04, max_n_time_masks=20,
    )  # fmt: skip
    torch.manual_seed(200 + seed)
    expected, _ = reference([x[i, :n].clone() for i, n in enumerate(lengths.tolist())], lengths)
    torch.manual_seed(200 + seed)
    ours = spec_augment(x.clone(), lengths, SF_SPECAUG)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[i, :n], expected[i], rtol=1e-5, atol=1e-5)


def test_adaptive_time_masks_by_hand():
    # 300 padded frames: int(0.04 * 300) = 12 masks narrower than 12 frames; 1000: 20 masks (the cap) below 40
    assert time_masks(SF_SPECAUG, 300) == (12, (0, 12))
    assert time_masks(SF_SPECAUG, 1000) == (20, (0, 40))
    assert time_masks(SpecAugSettings(), 300) == (2, (0, 40))
    # under 25 frames the adaptive width has no room: nothing is masked along time (s3prl fails there)
    assert time_masks(SF_SPECAUG, 24) == (0, (0, 0))
    x, lengths = _batch(5, [24, 20])
    torch.manual_seed(0)
    out = spec_augment(x, lengths, SpecAugSettings(time_warp_window=0, num_freq_masks=0, adaptive_number_ratio=0.04,
                                                   adaptive_size_ratio=0.04))  # fmt: skip
    assert torch.equal(out, x)


def test_is_out_of_place_keeps_padding_and_does_nothing_when_switched_off():
    x, lengths = _batch(3, [50, 30])
    x.requires_grad_(True)
    torch.manual_seed(0)
    out = spec_augment(x, lengths, SpecAugSettings())
    out.sum().backward()
    assert x.grad is not None and (out[1, 30:] == 0).all()
    # a feature column masked for an utterance gets no gradient from it
    masked_columns = (out[0, :50] == 0).all(dim=0)
    assert (x.grad[0, :, masked_columns] == 0).all()
    off = SpecAugSettings(time_warp_window=0, num_freq_masks=0, num_time_masks=0)
    assert torch.equal(spec_augment(x, lengths, off), x)


def test_time_warp_keeps_each_utterances_length_and_a_constant_signal():
    x = torch.zeros(2, 40, 4)
    x[0, :40], x[1, :25] = 3.0, -1.0
    torch.manual_seed(0)
    out = spec_augment(x, torch.tensor([40, 25]), SpecAugSettings(num_freq_masks=0, num_time_masks=0))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1, :25], x[1, :25])
    assert (out[1, 25:] == 0).all()


def test_on_for_the_superb_protocol_off_for_embedded_unless_asked():
    assert CTCProbeParams(protocol="superb").specaug_settings() == SpecAugSettings()
    assert CTCProbeParams(protocol="embedded").specaug_settings() is None
    assert CTCProbeParams(protocol="embedded", specaug=True).specaug_settings() == SpecAugSettings()
    assert CTCProbeParams(protocol="superb", specaug=False).specaug_settings() is None
    assert SFParams(protocol="superb").specaug_settings() == SF_SPECAUG


def test_a_probe_augments_only_while_it_trains():
    from harness.evaluation.probe import ProbeModel, _Raw
    from plugins.downstreams.asr import SpeechRecognitionTask

    torch.manual_seed(0)
    rows = [{"id": "a", "text": "ab ba"}, {"id": "b", "text": "aab"}]
    states = torch.randn(3, 2, 60, 64)  # L×B×T×D
    raw = _Raw(rows, states=states, lengths=torch.tensor([60, 41]))
    plain = ProbeModel(SpeechRecognitionTask(["a", "b", " "], 16, (), specaug=None), 3, 64)
    augmented = ProbeModel(SpeechRecognitionTask(["a", "b", " "], 16, (), specaug=SpecAugSettings()), 3, 64)
    augmented.load_state_dict(plain.state_dict())
    for model in (plain, augmented):
        model.eval()
    assert torch.equal(plain.loss(raw), augmented.loss(raw))
    plain.train(), augmented.train()
    torch.manual_seed(1)
    assert not torch.allclose(plain.loss(raw), augmented.loss(raw))
