"""With the lengths on the host, an upstream's forward never reads a value back from the device.

The detector is the ``meta`` device: a meta tensor has shapes but no data, so any read of one
(``.tolist()``, ``bool()``, ``.item()``, ``nonzero``, a copy to the host) raises. The model and its
waveforms live there; the lengths do not.
"""

from __future__ import annotations

import pytest
import torch
from transformers.masking_utils import create_bidirectional_mask

from harness.data.waveforms import WaveBatch
from harness.models.speech_encoder import _attention_mask, _call_layer
from plugins.upstreams.decoar2 import Decoar2Params, Decoar2Plugin
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin

#: valid samples: padded, and the last too short for one frame of HuBERT's
LENGTHS = [16000, 6100, 11000, 300]


def _model(plugin: str):
    if plugin == "hubert":  # post-LN layers, group-norm CNN
        return HubertPlugin().build(HubertParams(preset="tiny"), seed=4)
    if plugin == "wav2vec2-stable":  # pre-LN layers, layer-norm CNN
        model = Wav2Vec2Plugin().build(Wav2Vec2Params(preset="tiny"), seed=4)
        return type(model)({**model.config(), "do_stable_layer_norm": True, "feat_extract_norm": "layer"})
    return Decoar2Plugin().build(Decoar2Params(preset="tiny"), seed=4)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("attention", ["padded", "packed"])
@pytest.mark.parametrize("plugin", ["hubert", "wav2vec2-stable", "decoar2"])
def test_the_forward_reads_nothing_back_from_the_device(plugin, attention, training):
    model = _model(plugin).train(training).to("meta")
    model.set_attention(attention)
    model.set_gradient_checkpointing(training)
    host_lengths = torch.tensor(LENGTHS)
    out = model(torch.zeros(len(LENGTHS), max(LENGTHS), device="meta"), host_lengths)
    frames = model.frame_lengths(host_lengths)
    assert out.lengths.device.type == "meta"
    assert [h.shape[:2] for h in out.hidden_states] == [(len(LENGTHS), int(frames.max()))] * model.num_hidden_states
    if training:
        sum(h.sum() for h in out.hidden_states).backward()  # the backward pass reads nothing either


@pytest.mark.parametrize(("setter", "mode"), [("set_positional_conv", "fft"), ("set_feature_conv", "gemm")])
def test_the_faster_forms_read_nothing_back_either(setter, mode):
    model = _model("hubert").train().to("meta")
    getattr(model, setter)(mode)  # the FFT positional convolution; the CNN as matrix products
    out = model(torch.zeros(len(LENGTHS), max(LENGTHS), device="meta"), torch.tensor(LENGTHS))
    sum(h.sum() for h in out.hidden_states).backward()


def test_lengths_on_the_device_are_read_back_which_the_detector_catches():
    model = _model("hubert").eval().to("meta")
    with pytest.raises((RuntimeError, NotImplementedError), match="meta"):
        model(torch.zeros(2, 16000, device="meta"), torch.tensor([16000, 8000], device="meta"))


def test_a_batch_on_its_way_to_the_device_keeps_its_lengths_on_the_host():
    batch = WaveBatch(torch.zeros(2, 10), torch.tensor([10, 4]), [{}, {}]).to(torch.device("meta"))
    assert batch.wavs.device.type == "meta"
    assert batch.wav_lengths.device.type == "cpu"
    assert batch.wav_lengths.tolist() == [10, 4]


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_the_padding_mask_gives_the_layers_transformers_own_result(kernel):
    model = _model("hubert").eval()
    config = model.hf_config
    config._attn_implementation = kernel
    layer = model.encoder.layers[0]
    x = torch.randn(3, 7, model.hidden_size, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(7)[None, :] < torch.tensor([7, 4, 0])[:, None]  # full, padded, empty
    ours = _attention_mask(config, x, mask, all_valid=False)
    theirs = create_bidirectional_mask(config=config, inputs_embeds=x, attention_mask=mask)
    with torch.no_grad():
        want = _call_layer(layer, x, theirs)
        got = _call_layer(layer, x, ours)
    assert (got - want)[mask].abs().max() < 1e-6  # the valid frames; the empty utterance has none
    assert _attention_mask(config, x, mask, all_valid=True) is None
