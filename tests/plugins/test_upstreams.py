"""The four upstreams as the rest of the harness uses them: presets, padding, saving and loading,
fine-tuning switches (gradient checkpointing, frozen downsampling module, layer drop), sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.core.errors import CheckpointError, HarnessError
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.models.model_io import load_model, save_model
from plugins.upstreams import _decoar2_model, _hubert_model, _wav2vec2_model, decoar2, fbank, hubert, wav2vec2

PLUGINS = {
    "wav2vec2": wav2vec2.Wav2Vec2Plugin,
    "hubert": hubert.HubertPlugin,
    "decoar2": decoar2.Decoar2Plugin,
    "fbank": fbank.FbankPlugin,
}
TRANSFORMERS = ["wav2vec2", "hubert", "decoar2"]


def build(family: str, seed: int = 0, **params):
    plugin = PLUGINS[family]()
    values = params or ({"preset": "tiny"} if family != "fbank" else {})
    return plugin.build(validate_params(plugin.Params, values, where=family), seed)


@pytest.fixture(scope="module")
def tiny_models():
    return {family: build(family) for family in PLUGINS}


def _speechlike(lengths, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    wavs = []
    for n in lengths:
        t = torch.arange(n) / 16000
        wavs.append(0.2 * torch.sin(2 * np.pi * 180 * t) * (1 + torch.sin(2 * np.pi * 4 * t))
                    + 0.03 * torch.randn(n, generator=gen))
    lengths = torch.tensor(lengths)
    return torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), lengths


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize(
    ("family", "preset", "low", "high"),
    [
        ("wav2vec2", "tiny", 0.2e6, 0.5e6),
        ("wav2vec2", "base", 94.3e6, 94.5e6),  # wav2vec_small without its pre-training heads
        ("hubert", "tiny", 0.2e6, 0.5e6),
        ("hubert", "base", 94.3e6, 94.5e6),
        ("decoar2", "tiny", 0.2e6, 0.5e6),
        ("decoar2", "small", 1.8e6, 2.1e6),
        ("decoar2", "base", 89.7e6, 90.0e6),
    ],
)
def test_preset_sizes(family, preset, low, high):
    plugin = PLUGINS[family]()
    presets = {"wav2vec2": _wav2vec2_model, "hubert": _hubert_model, "decoar2": _decoar2_model}[family].PRESETS
    with torch.device("meta"):
        model = plugin.from_config(presets[preset])
    n = sum(p.numel() for p in model.parameters())
    assert low <= n <= high, n
    assert model.num_hidden_states == model.config()["num_hidden_layers"] + 1


def test_decoar2_small_is_the_demo_shape():
    cfg = _decoar2_model.PRESETS["small"]
    with torch.device("meta"):
        model = _decoar2_model.Decoar2Upstream(cfg)
    assert model.post_extract_proj.in_features == 160 and model.hidden_size == 192
    assert model.num_hidden_states == 5 and model.frame_shift == pytest.approx(0.02)
    assert cfg["do_stable_layer_norm"] is True


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_presets_are_seeded(family):
    a, b, c = build(family, seed=3), build(family, seed=3), build(family, seed=4)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a if state_a[k].numel() > 1)
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    build(family, seed=5)
    assert torch.equal(torch.rand(3), before), "building a preset must not move the global generator"


def test_params_need_exactly_one_source():
    with pytest.raises(HarnessError, match="give exactly one of checkpoint"):
        validate_params(hubert.HubertParams, {}, where="upstreams[0]")
    with pytest.raises(HarnessError, match="give exactly one of checkpoint"):
        validate_params(hubert.HubertParams, {"preset": "tiny", "checkpoint": "x.pt"}, where="upstreams[0]")
    with pytest.raises(HarnessError, match="preset"):
        validate_params(decoar2.Decoar2Params, {"preset": "huge"}, where="upstreams[0]")


# --------------------------------------------------------------------------- forward and padding


@pytest.mark.parametrize("family", list(PLUGINS))
def test_padded_batch_equals_single_utterances(tiny_models, family):
    model = tiny_models[family]
    wavs, lengths = _speechlike([16000, 11300, 5200, 401])
    with torch.no_grad():
        out = model(wavs, lengths)
        assert len(out.hidden_states) == model.num_hidden_states
        assert torch.equal(out.lengths, model.frame_lengths(lengths))
        for i in range(len(lengths)):
            single = model(wavs[i : i + 1, : lengths[i]], lengths[i : i + 1])
            n = int(single.lengths[0])
            assert n == int(out.lengths[i]) > 0
            for h_batch, h_single in zip(out.hidden_states, single.hidden_states):
                assert h_batch.shape[-1] == model.hidden_size
                ref = h_single[0, :n]
                assert float((h_batch[i, :n] - ref).abs().max()) <= 1e-4 * float(ref.abs().max())
                assert float(h_batch[i, n:].abs().sum()) == 0.0  # padding frames are zero


def test_normalize_uses_valid_samples_only():
    cfg = {**_wav2vec2_model.PRESETS["tiny"], "normalize": True, "feat_extract_norm": "layer"}
    model = wav2vec2.Wav2Vec2Plugin().from_config(cfg).eval()
    wavs, lengths = _speechlike([9000, 16000])
    wavs[0] *= 7.0  # scale does not matter once normalised
    with torch.no_grad():
        out = model(wavs, lengths)
        single = model(wavs[:1, :9000] / 7.0, lengths[:1])
    n = int(single.lengths[0])
    assert torch.allclose(out.hidden_states[-1][0, :n], single.hidden_states[-1][0], atol=1e-4)


def test_too_short_inputs_get_no_frames(tiny_models):
    model = tiny_models["hubert"]
    assert model.frame_lengths(torch.tensor([0, 399, 400, 720, 16000])).tolist() == [0, 0, 1, 2, 49]
    with torch.no_grad():
        out = model(torch.zeros(2, 300), torch.tensor([300, 200]))
    assert out.lengths.tolist() == [0, 0]


def test_fbank_is_the_superb_baseline(tiny_models):
    """240 dims at 10 ms; equal to an independent pipeline: kaldi-native-fbank, deltas with edge
    replication (torchaudio's compute_deltas), per-utterance CMVN with the unbiased std."""
    import kaldi_native_fbank as knf

    model = tiny_models["fbank"]
    assert model.hidden_size == 240 and model.frame_shift == 0.01 and model.state_dict() == {}
    wavs, lengths = _speechlike([12345])
    with torch.no_grad():
        ours = model(wavs, lengths).hidden_states[0][0].numpy()
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, wavs[0].tolist())
    fb.input_finished()
    x = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]).astype(np.float64)

    def delta(f):
        p = np.pad(f, ((2, 2), (0, 0)), mode="edge")
        return sum(k * (p[2 + k : len(f) + 2 + k] - p[2 - k : len(f) + 2 - k]) for k in (1, 2)) / 10.0

    d1 = delta(x)
    feats = np.concatenate([x, d1, delta(d1)], axis=1)
    ref = (feats - feats.mean(0)) / (1e-10 + feats.std(0, ddof=1))
    assert ours.shape == ref.shape == (75, 240)
    assert np.abs(ours - ref).max() < 2e-3


@pytest.mark.parametrize("window", ["hamming", "povey"])
def test_kaldi_fbank_matches_kaldi_native_fbank(window):
    import kaldi_native_fbank as knf

    from harness.models.fbank import KaldiFbank, kaldi_mel_banks

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = window
    opts.mel_opts.num_bins = 80
    banks = np.array(knf.MelBanks(opts.mel_opts, opts.frame_opts).get_matrix())
    assert np.abs(kaldi_mel_banks(80)[:, : banks.shape[1]] - banks).max() < 1e-4
    wavs, lengths = _speechlike([7001, 4000])
    feats, n = KaldiFbank(80, window)(wavs, lengths)
    assert n.tolist() == [1 + (7001 - 400) // 160, 1 + (4000 - 400) // 160]
    for i in range(2):
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(16000, wavs[i, : lengths[i]].tolist())
        fb.input_finished()
        ref = np.stack([fb.get_frame(t) for t in range(fb.num_frames_ready)])
        assert ref.shape[0] == n[i]
        assert np.abs(feats[i, : n[i]].numpy() - ref).max() < 1e-3


def test_decoar2_stacking_concatenates_neighbouring_frames():
    from harness.models.fbank import reduce_frames

    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    lengths = torch.tensor([5, 3])
    stacked, n = reduce_frames(x, lengths, 2, "stack")
    assert n.tolist() == [3, 2] and stacked.shape == (2, 3, 4)
    assert stacked[0, 1].tolist() == x[0, 2].tolist() + x[0, 3].tolist()
    assert stacked[0, 2].tolist() == x[0, 4].tolist() + x[0, 4].tolist()  # last frame repeated
    assert stacked[1, 1].tolist() == x[1, 2].tolist() + x[1, 2].tolist()  # within its own length
    skipped, n = reduce_frames(x, lengths, 2, "skip")
    assert n.tolist() == [3, 2] and torch.equal(skipped[0], x[0, ::2])


# --------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("family", list(PLUGINS))
def test_model_folder_round_trip_is_bit_exact(tiny_models, family, tmp_path: Path):
    model = tiny_models[family]
    save_model(model, tmp_path / "m")
    manager = PluginManager(modules=[(wav2vec2, "t", "0"), (hubert, "t", "0"), (decoar2, "t", "0"),
                                     (fbank, "t", "0")], entry_points=False)
    loaded = load_model(tmp_path / "m", manager)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_file(str(tmp_path / "m" / "model.safetensors")).keys() == a.keys()
    wavs, lengths = _speechlike([8000, 6000])
    with torch.no_grad():
        for x, y in zip(model(wavs, lengths).hidden_states, loaded(wavs, lengths).hidden_states):
            assert torch.equal(x, y)
    # the same folder through build(checkpoint=...)
    again = build(family, checkpoint=str(tmp_path / "m"))
    assert all(torch.equal(a[k], again.state_dict()[k]) for k in a)


def test_model_folder_errors(tiny_models, tmp_path: Path):
    save_model(tiny_models["hubert"], tmp_path / "h")
    with pytest.raises(CheckpointError, match=r"holds a hubert model, not a wav2vec2 one"):
        build("wav2vec2", checkpoint=str(tmp_path / "h"))
    state = load_file(str(tmp_path / "h" / "model.safetensors"))
    state.pop("encoder.layers.1.feed_forward.output_dense.weight")
    save_file(state, str(tmp_path / "h" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"lacks 1 weights a hubert model needs "
                                              r"\(encoder.layers.1.feed_forward.output_dense.weight\)"):
        build("hubert", checkpoint=str(tmp_path / "h"))
    data = (tmp_path / "h" / "model.safetensors").read_bytes()
    (tmp_path / "h" / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        build("hubert", checkpoint=str(tmp_path / "h"))
    with pytest.raises(CheckpointError, match="does not exist"):
        build("hubert", checkpoint=str(tmp_path / "nothing"))


def test_transformers_folders(tmp_path: Path):
    """A save_pretrained folder loads and reproduces transformers' own forward; older folders
    (pytorch_model.bin with weight_g/weight_v) load safely too; a folder of another family is refused."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    arch = {k: v for k, v in _wav2vec2_model.PRESETS["tiny"].items() if k != "normalize"}
    torch.manual_seed(0)
    hf = Wav2Vec2Model(Wav2Vec2Config(**arch, mask_time_prob=0.05)).eval()  # has masked_spec_embed
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    ours = build("wav2vec2", checkpoint=str(tmp_path / "hf"))
    assert ours.normalize is False
    wavs, lengths = _speechlike([12000])
    with torch.no_grad():
        expected = hf(wavs).last_hidden_state
        got = ours(wavs, lengths).hidden_states[-1]
    assert torch.allclose(got, expected, atol=1e-5)

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    state = {}
    for key, value in load_file(str(tmp_path / "hf" / "model.safetensors")).items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                  "weight_v")
        state[f"wav2vec2.{key}"] = value
    state["lm_head.weight"] = torch.zeros(5, 96)
    torch.save(state, legacy / "pytorch_model.bin")
    (legacy / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    old = build("wav2vec2", checkpoint=str(legacy))
    assert all(torch.equal(old.state_dict()[k], ours.state_dict()[k]) for k in ours.state_dict())

    HubertModel(HubertConfig(**arch)).save_pretrained(tmp_path / "hu")
    with pytest.raises(CheckpointError, match="holds a transformers 'hubert' model, not a wav2vec2 one"):
        build("wav2vec2", checkpoint=str(tmp_path / "hu"))


# --------------------------------------------------------------------------- fine-tuning switches


def _train_step(model, wavs, lengths, seed):
    torch.manual_seed(seed)
    out = model(wavs, lengths)
    loss = sum(h.pow(2).mean() for h in out.hidden_states[1:])
    model.zero_grad()
    loss.backward()
    return [h.detach() for h in out.hidden_states], {n: p.grad.clone() for n, p in model.named_parameters()
                                                     if p.grad is not None}


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_gradient_checkpointing_changes_nothing(family):
    model = build(family)
    model.train()
    model.set_layerdrop(0.0)
    wavs, lengths = _speechlike([9000, 7000])
    h_off, g_off = _train_step(model, wavs, lengths, seed=1)
    model.set_gradient_checkpointing(True)
    h_on, g_on = _train_step(model, wavs, lengths, seed=1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(h_off, h_on))
    assert g_off.keys() == g_on.keys() and len(g_off) > 0
    for name in g_off:
        assert torch.allclose(g_off[name], g_on[name], atol=1e-6, rtol=1e-4), name


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_frozen_downsampling_module_stays_put(family):
    model = build(family)
    model.train()
    cnn = model.downsampling_module()
    assert cnn is model.feature_extractor
    for p in cnn.parameters():
        p.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    wavs, lengths = _speechlike([8000])
    out = model(wavs, lengths)
    sum(h.pow(2).mean() for h in out.hidden_states).backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    cnn_names = {f"feature_extractor.{n}" for n, _ in cnn.named_parameters()}
    assert cnn_names and not (changed & cnn_names)
    assert "encoder.layers.0.attention.q_proj.weight" in changed
    assert all(p.grad is None for p in cnn.parameters())


def test_decoar2_and_fbank_front_ends_have_no_weights(tiny_models):
    for family in ("decoar2", "fbank"):
        assert list(tiny_models[family].downsampling_module().parameters()) == []


@pytest.mark.parametrize("family", TRANSFORMERS)
def test_layerdrop_is_switchable(family):
    model = build(family)
    model.train()
    wavs, lengths = _speechlike([6000])
    with torch.no_grad():
        model.set_layerdrop(1.0)  # every layer dropped: hidden states do not change
        dropped = model(wavs, lengths).hidden_states
        model.set_layerdrop(0.0)  # fine-tuning turns it off: every layer runs
        kept = model(wavs, lengths).hidden_states
        model.eval()
        model.set_layerdrop(1.0)  # no layer drop at inference whatever the setting
        inference = model(wavs, lengths).hidden_states
    if not model.config()["do_stable_layer_norm"]:
        assert all(torch.equal(h, dropped[0]) for h in dropped)
    assert all(not torch.allclose(a, b) for a, b in zip(kept[:-1], kept[1:]))
    assert all(not torch.allclose(a, b) for a, b in zip(inference[:-1], inference[1:]))
