"""The packed encoder (valid frames only) against transformers' layers on padded batches."""

from __future__ import annotations

import pytest
import torch

from harness.models.packed_encoder import Packing, attention_within_utterances, resolve_attention
from plugins.upstreams.decoar2 import Decoar2Params, Decoar2Plugin
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin

#: on CUDA the packed path runs the jagged kernel, on the CPU one call per utterance
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _model(plugin: str):
    if plugin == "hubert":  # post-LN layers
        return HubertPlugin().build(HubertParams(preset="tiny"), seed=4)
    if plugin == "wav2vec2-stable":  # pre-LN layers ("stable layer norm")
        model = Wav2Vec2Plugin().build(Wav2Vec2Params(preset="tiny"), seed=4)
        config = {**model.config(), "do_stable_layer_norm": True, "feat_extract_norm": "layer"}
        return type(model)(config)
    return Decoar2Plugin().build(Decoar2Params(preset="tiny"), seed=4)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([16000, 6100, 11000, 300])  # the last is too short for a frame of HuBERT's
    wavs = torch.randn(4, 16000, generator=g) * (torch.arange(16000)[None] < lengths[:, None])
    return wavs, lengths


def _without_dropout(model: torch.nn.Module) -> None:
    model.set_layerdrop(0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):  # transformers' attention dropout
            module.dropout = 0.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("plugin", ["hubert", "wav2vec2-stable", "decoar2"])
def test_packed_hidden_states_equal_the_padded_ones(plugin, device):
    model = _model(plugin).eval().to(device)
    wavs, lengths = (t.to(device) for t in _batch())
    with torch.no_grad():
        model.set_attention("padded")
        want = model(wavs, lengths)
        model.set_attention("packed")
        got = model(wavs, lengths)
    assert torch.equal(got.lengths, want.lengths)
    assert int(want.lengths.min()) < int(want.lengths.max())  # the batch is padded
    for a, b in zip(got.hidden_states, want.hidden_states, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 2e-5
        padding = torch.arange(a.shape[1], device=device)[None, :] >= got.lengths[:, None]
        assert not a[padding].any()  # zeros on the padding, as the padded path


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_packed_gradients_equal_the_padded_ones(checkpointing, device):
    model = _model("hubert").train().to(device)
    _without_dropout(model)
    model.set_gradient_checkpointing(checkpointing)
    wavs, lengths = (t.to(device) for t in _batch(1))
    weights = torch.randn(4, 60, model.hidden_size, generator=torch.Generator().manual_seed(2)).to(device)
    grads = {}
    for mode in ("padded", "packed"):
        model.set_attention(mode)
        model.zero_grad()
        hidden = model(wavs, lengths).hidden_states
        sum((h * weights[:, : h.shape[1]]).sum() for h in hidden).backward()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads["packed"].keys() == grads["padded"].keys()
    for name, want in grads["padded"].items():
        if name.endswith("k_proj.bias"):  # its true gradient is 0 (softmax ignores a shift): both are rounding
            continue
        got = grads["packed"][name]
        assert (got - want).abs().max() <= 1e-4 * want.abs().max() + 1e-6, name


def test_each_utterance_attends_to_itself_only():
    g = torch.Generator().manual_seed(5)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 4, 0, 7])[:, None]  # an empty utterance too
    packing = Packing.from_mask(mask)
    assert packing.bounds == (0, 9, 13, 13, 20)
    q, k, v = (torch.randn(20, 3, 8, generator=g) for _ in range(3))
    loop = attention_within_utterances(q, k, v, packing, 0.0, 0.3)
    assert loop.shape == (20, 3, 8)
    for a, b in [(0, 9), (9, 13), (13, 20)]:
        alone = torch.softmax(q[a:b].transpose(0, 1) @ k[a:b].permute(1, 2, 0) * 0.3, -1) @ v[a:b].transpose(0, 1)
        assert torch.allclose(loop[a:b], alone.transpose(0, 1), atol=1e-6)


def test_packing_round_trip_and_modes():
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 3])[:, None]
    packing = Packing.from_mask(mask)
    x = torch.randn(3, 5, 4)
    rows = packing.pack(x)
    assert rows.shape == (10, 4)
    assert torch.equal(rows[5:7], x[1, :2])
    assert torch.equal(packing.unpack(rows), x * mask[..., None])
    assert resolve_attention("auto", torch.device("cpu")) == "padded"
    assert resolve_attention("auto", torch.device("cuda")) == "padded"  # packed measured 3.5x slower on an H200
    assert resolve_attention("packed", torch.device("cpu")) == "packed"
    with pytest.raises(ValueError, match="unknown attention mode 'flash'"):
        _model("hubert").set_attention("flash")


@pytest.mark.parametrize("device", DEVICES)
def test_packed_path_under_bf16_autocast_matches_within_bf16_rounding(device):
    model = _model("hubert").eval().to(device)
    wavs, lengths = (t.to(device) for t in _batch(3))
    out = {}
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        for mode in ("padded", "packed"):
            model.set_attention(mode)
            out[mode] = model(wavs, lengths).hidden_states
    for a, b in zip(out["packed"], out["padded"], strict=True):
        assert a.dtype == b.dtype
        assert (a.float() - b.float()).abs().max() <= 0.05 * b.float().abs().max()
