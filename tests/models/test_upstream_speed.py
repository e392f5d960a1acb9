"""The upstream's faster paths against today's: the FFT positional convolution, the attention mask
only where there is padding, compile reaching the model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.models.speech_encoder import _attention_mask
from harness.models.upstream_speed import grouped_conv1d_fft, positional_embedding, resolve_pos_conv
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin


@pytest.fixture(scope="module")
def hubert():
    return HubertPlugin().build(HubertParams(preset="tiny"), seed=3)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([16000, 11000, 7300])
    wavs = torch.randn(3, 16000, generator=g) * (torch.arange(16000)[None] < lengths[:, None])
    return wavs, lengths


@pytest.mark.parametrize(
    ("channels", "groups", "kernel", "frames"), [(32, 4, 16, 57), (96, 16, 128, 260), (8, 1, 5, 3)]
)
def test_fft_convolution_equals_conv1d(channels, groups, kernel, frames):
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(2, channels, frames, generator=g)
    w = torch.randn(channels, channels // groups, kernel, generator=g) / kernel**0.5
    b = torch.randn(channels, generator=g)
    want = F.conv1d(x, w, b, padding=kernel // 2, groups=groups)
    got = grouped_conv1d_fft(x, w, b, kernel // 2, groups)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_fft_positional_embedding_keeps_weight_norm_gradients(hubert):
    module = hubert.encoder.pos_conv_embed
    x = torch.randn(2, 40, hubert.hidden_size, generator=torch.Generator().manual_seed(1))
    grads = {}
    for mode in ("conv", "fft"):
        module.zero_grad()
        out = positional_embedding(module, x, mode)
        out.square().sum().backward()
        grads[mode] = (out.detach(), [p.grad.clone() for p in module.parameters()])
    assert torch.allclose(grads["fft"][0], grads["conv"][0], atol=1e-5)
    for a, b in zip(grads["fft"][1], grads["conv"][1], strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("plugin", ["hubert", "wav2vec2"])
def test_model_with_fft_positional_conv_equals_conv(plugin):
    model = (HubertPlugin().build(HubertParams(preset="tiny"), seed=2) if plugin == "hubert"
             else Wav2Vec2Plugin().build(Wav2Vec2Params(preset="tiny"), seed=2))
    wavs, lengths = _batch()
    with torch.no_grad():
        model.set_positional_conv("conv")
        want = model(wavs, lengths)
        model.set_positional_conv("fft")
        got = model(wavs, lengths)
    assert torch.equal(got.lengths, want.lengths)
    for a, b in zip(got.hidden_states, want.hidden_states, strict=True):
        assert (a - b).abs().max() < 1e-5


def test_auto_mode_keeps_the_convolution_on_cpu_and_refuses_unknown_modes(hubert):
    assert hubert.pos_conv_mode == "auto"
    assert resolve_pos_conv("auto", torch.device("cpu")) == "conv"
    assert resolve_pos_conv("auto", torch.device("cuda")) == "fft"
    with pytest.raises(ValueError, match="unknown positional-convolution mode 'winograd'"):
        hubert.set_positional_conv("winograd")


def test_no_attention_mask_without_padding_and_padding_leaves_real_frames_alone(hubert):
    x = torch.zeros(2, 5, hubert.hidden_size)
    assert _attention_mask(hubert.hf_config, x, torch.ones(2, 5, dtype=torch.bool)) is None
    wavs, lengths = _batch(1)
    with torch.no_grad():
        batched = hubert(wavs, lengths)
        for i in range(3):
            alone = hubert(wavs[i : i + 1, : int(lengths[i])], lengths[i : i + 1])  # no padding: no mask
            n = int(alone.lengths[0])
            assert int(batched.lengths[i]) == n
            for a, b in zip(batched.hidden_states, alone.hidden_states, strict=True):
                assert (a[i, :n] - b[0, :n]).abs().max() < 1e-5
