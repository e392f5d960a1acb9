"""The CNN feature encoder as time-major matrix products (``set_feature_conv("gemm")``) against
transformers' convolutions: each strided convolution, the masked group norm, whole models (group-norm
and layer-norm CNNs, with padding) and their gradients (that it reads nothing back from the device is
tested in test_host_lengths.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.models.feature_conv import masked_group_norm_time_major, strided_conv_gemm
from harness.models.hf_speech import _masked_group_norm
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin

#: valid samples of a padded batch: full, two shorter, one too short for a frame of the tiny CNN
LENGTHS = [16000, 11000, 7300, 200]


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "frames", "bias"),
    [(1, 16, 10, 5, 403, False),  # wav2vec 2.0's first block on a length that is no multiple of 5
     (8, 12, 3, 2, 64, True),  # blocks 2-5: two products, the second on a strided column view
     (8, 12, 2, 2, 33, False),  # blocks 6-7: the kernel is the stride, one product
     (4, 6, 3, 3, 20, True),  # kernel equal to a stride of 3
     (4, 6, 5, 2, 30, False)],  # three rows of the view per output (kernel > 2·stride)
)
def test_a_strided_convolution_as_matrix_products_equals_conv1d(c_in, c_out, kernel, stride, frames, bias):
    g = torch.Generator().manual_seed(kernel * 100 + frames)
    x = torch.randn(3, c_in, frames, generator=g)
    w = torch.randn(c_out, c_in, kernel, generator=g) / (c_in * kernel) ** 0.5
    b = torch.randn(c_out, generator=g) if bias else None
    want = F.conv1d(x, w, b, stride=stride).transpose(1, 2)
    got = strided_conv_gemm(x.transpose(1, 2).contiguous(), w, b, stride)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_an_input_shorter_than_the_kernel_gives_no_frame():
    assert strided_conv_gemm(torch.randn(3, 2, 4), torch.randn(6, 4, 3), None, 2).shape == (3, 0, 6)


@pytest.mark.parametrize("counts", [[50, 50, 50], [50, 31, 1]])
def test_the_time_major_group_norm_equals_the_channel_major_one(counts):
    norm = torch.nn.GroupNorm(6, 6, affine=True)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 6))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 6))
    x = torch.randn(3, 6, 50, generator=torch.Generator().manual_seed(len(set(counts))))
    want = _masked_group_norm(x, counts, norm).transpose(1, 2)
    got = masked_group_norm_time_major(x.transpose(1, 2).contiguous(), counts, norm)
    assert torch.allclose(got, want, atol=1e-5)


def _model(kind: str):
    if kind == "hubert":  # group norm in the first block, no conv bias
        return HubertPlugin().build(HubertParams(preset="tiny"), seed=5)
    model = Wav2Vec2Plugin().build(Wav2Vec2Params(preset="tiny"), seed=5)  # layer norm in every block, bias
    return type(model)({**model.config(), "feat_extract_norm": "layer", "conv_bias": True})


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor(LENGTHS)
    wavs = torch.randn(len(LENGTHS), max(LENGTHS), generator=torch.Generator().manual_seed(0))
    return wavs * (torch.arange(max(LENGTHS))[None] < lengths[:, None]), lengths


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2-layer-norm"])
def test_the_model_gives_the_same_hidden_states_and_gradients_either_way(kind):
    model = _model(kind).eval()  # no dropout: the two passes are comparable
    wavs, lengths = _batch()
    runs = {}
    for mode in ("conv", "gemm"):
        model.set_feature_conv(mode)
        model.zero_grad(set_to_none=True)
        out = model(wavs, lengths)
        sum(h.square().mean() for h in out.hidden_states).backward()  # the CNN trains too
        conv0 = model.feature_extractor.conv_layers[0].conv.weight.grad
        runs[mode] = ([h.detach() for h in out.hidden_states], out.lengths, conv0.clone())
    (conv_h, conv_n, conv_g), (gemm_h, gemm_n, gemm_g) = runs["conv"], runs["gemm"]
    assert torch.equal(conv_n, gemm_n)
    for a, b in zip(conv_h, gemm_h, strict=True):
        valid = torch.arange(a.shape[1])[None] < conv_n[:, None]
        assert torch.allclose(a[valid], b[valid], atol=2e-5, rtol=1e-4)
    assert torch.allclose(gemm_g, conv_g, atol=1e-6 + 1e-4 * conv_g.abs().max().item())


def test_under_bf16_autocast_the_frames_agree_to_bf16_precision():
    model = _model("hubert").eval()
    wavs, lengths = _batch()
    states = {}
    for mode in ("conv", "gemm"):
        model.set_feature_conv(mode)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            states[mode] = model(wavs, lengths).hidden_states[0].float()
    valid = torch.arange(states["conv"].shape[1])[None] < model.frame_lengths(lengths)[:, None]
    a, b = states["conv"][valid], states["gemm"][valid]
    assert (a - b).norm() / a.norm() < 2e-2  # bf16 keeps 8 bits of mantissa


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_two_forms_agree_in_float32_and_in_bf16():
    model = _model("hubert").eval().cuda()
    wavs, lengths = _batch()
    wavs = wavs.cuda()
    valid = torch.arange(model.frame_lengths(lengths).max())[None] < model.frame_lengths(lengths)[:, None]
    # fp32: cuDNN's convolutions run on TF32 tensor cores by default (about 1e-3), the products do not
    for dtype, tolerance in ((torch.float32, 5e-3), (torch.bfloat16, 2e-2)):
        states = {}
        for mode in ("conv", "gemm"):
            model.set_feature_conv(mode)
            with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                states[mode] = model(wavs, lengths).hidden_states[0].float().cpu()[valid]
        assert (states["conv"] - states["gemm"]).norm() / states["conv"].norm() < tolerance, dtype


def test_an_unknown_form_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match=r"unknown feature-convolution mode 'im2col'; use one of conv, gemm"):
        _model("hubert").set_feature_conv("im2col")
