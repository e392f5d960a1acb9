"""Our upstreams against an independent implementation: s3prl's re-implementations of the fairseq
models (wav2vec 2.0, HuBERT) and of DeCoAR 2.0, with small random weights saved in the published
checkpoint layouts. Every hidden state must match to 1e-4 relative.

s3prl is installed with ``pip install --no-deps s3prl`` (the Makefile does). It imports torchaudio
only for audio helpers: a stub module stands in, whose ``compliance.kaldi.fbank`` is computed with
kaldi-native-fbank (so DeCoAR 2.0's front end is checked against a third implementation too).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import sys
import types
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.errors import CheckpointError
from harness.models.model_io import save_model
from plugins.upstreams.decoar2 import Decoar2Params, Decoar2Plugin
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from plugins.upstreams.wav2vec2 import Wav2Vec2Params, Wav2Vec2Plugin

pytest.importorskip("s3prl", reason="s3prl (pip install --no-deps s3prl==0.4.18) provides the reference models")

TOL = 1e-4
CONV = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] * 2"


# --------------------------------------------------------------------------- s3prl with a torchaudio stub


def _knf_fbank(waveform: torch.Tensor, num_mel_bins: int = 80, sample_frequency: int = 16000,
               window_type: str = "povey", **_: object) -> torch.Tensor:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = sample_frequency
    opts.frame_opts.window_type = window_type
    opts.mel_opts.num_bins = num_mel_bins
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(sample_frequency, waveform.reshape(-1).tolist())
    fb.input_finished()
    return torch.tensor(np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]))


@pytest.fixture(scope="module")
def s3prl():
    """s3prl's model modules, imported with torchaudio stubbed (restored afterwards)."""
    names = ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")
    saved = {n: sys.modules.get(n) for n in names}
    ta, comp, kaldi = (types.ModuleType(n) for n in names)
    kaldi.fbank = _knf_fbank
    ta.compliance, comp.kaldi = comp, kaldi
    sys.modules.update(dict(zip(names, (ta, comp, kaldi))))
    try:
        from s3prl.upstream.decoar2 import decoar2 as d2
        from s3prl.upstream.decoar2 import expert as d2_expert
        from s3prl.upstream.hubert import expert as hu_expert
        from s3prl.upstream.hubert import hubert_model as hu
        from s3prl.upstream.wav2vec2 import expert as w2_expert
        from s3prl.upstream.wav2vec2 import wav2vec2_model as w2

        yield types.SimpleNamespace(w2=w2, w2_expert=w2_expert, hu=hu, hu_expert=hu_expert, d2=d2, d2_expert=d2_expert)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


# --------------------------------------------------------------------------- fairseq's pickled classes


@contextlib.contextmanager
def fairseq_like_classes():
    """Classes named and pickled like omegaconf's containers and fairseq's Dictionary and enums,
    present only while saving (so loading must do without them)."""
    modules = ("omegaconf", "omegaconf.base", "omegaconf.nodes", "omegaconf.dictconfig", "fairseq",
               "fairseq.data", "fairseq.data.dictionary", "fairseq.dataclass", "fairseq.dataclass.constants",
               "fairseq.models", "fairseq.models.hubert", "fairseq.models.hubert.hubert")
    saved = {n: sys.modules.get(n) for n in modules}
    mods = {n: types.ModuleType(n) for n in modules}
    sys.modules.update(mods)

    def place(cls, module):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(mods[module], cls.__name__, cls)
        return cls

    @dataclasses.dataclass
    class Metadata:
        ref_type: typing.Any
        object_type: typing.Any
        optional: bool
        key: typing.Any
        flags: dict

    @dataclasses.dataclass
    class ContainerMetadata(Metadata):
        key_type: typing.Any = None
        element_type: typing.Any = None

    class AnyNode:
        def __init__(self, value, key, parent):
            self._val, self._parent = value, parent
            self._metadata = Metadata(typing.Any, None, True, key, {})

    class HubertConfig:  # a structured config's class, referenced by metadata only
        pass

    class DictConfig:
        def __init__(self, content, key=None, parent=None, object_type=None):
            self._metadata = ContainerMetadata(typing.Any, object_type, True, key, {}, str, typing.Any)
            self._parent = parent
            self._content = {
                k: DictConfig(v, k, self, HubertConfig if k == "model" else None) if isinstance(v, dict)
                else AnyNode(v, k, self)
                for k, v in content.items()
            }

        def __getstate__(self):
            return dict(self.__dict__)

    class Dictionary:
        def __init__(self, symbols):
            self.symbols, self.count = list(symbols), [1] * len(symbols)
            self.indices = {s: i for i, s in enumerate(symbols)}
            self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"

    place(Metadata, "omegaconf.base")
    place(ContainerMetadata, "omegaconf.base")
    place(AnyNode, "omegaconf.nodes")
    place(DictConfig, "omegaconf.dictconfig")
    place(Dictionary, "fairseq.data.dictionary")
    place(HubertConfig, "fairseq.models.hubert.hubert")
    mode = enum.Enum("EXTRACTOR_MODE_CHOICES", {"default": "default", "layer_norm": "layer_norm"},
                     module="fairseq.dataclass.constants")
    mods["fairseq.dataclass.constants"].EXTRACTOR_MODE_CHOICES = mode
    try:
        yield types.SimpleNamespace(DictConfig=DictConfig, Dictionary=Dictionary, ExtractorMode=mode)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


# --------------------------------------------------------------------------- helpers


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every weight off its initial value (ones/zeros would hide mapping mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def _waves(seed: int, lengths=(16000, 11000)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        t = torch.arange(n) / 16000
        f0 = 120 + 80 * torch.rand((), generator=gen)
        out.append((0.3 * torch.sin(2 * np.pi * f0 * t) * torch.sin(2 * np.pi * 3 * t)
                    + 0.05 * torch.randn(n, generator=gen)).float())
    return out


def _assert_close(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape, f"hidden state {i}: {tuple(a.shape)} vs {tuple(b.shape)}"
        rel = float((a - b).abs().max() / b.abs().max())
        assert rel < TOL, f"hidden state {i}: relative difference {rel:.2e}"


def _compare(model, expert, wavs: list[torch.Tensor]) -> None:
    """Each utterance alone through s3prl; ours alone and in one padded batch."""
    lengths = torch.tensor([len(w) for w in wavs])
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    with torch.no_grad():
        batched = model(batch, lengths)
        for i, wav in enumerate(wavs):
            ref = [h[0] for h in expert([wav])["hidden_states"]]
            single = model(wav[None], lengths[i : i + 1])
            _assert_close([h[0] for h in single.hidden_states], ref)
            n = int(batched.lengths[i])
            assert n == ref[0].shape[0] == int(single.lengths[0])
            _assert_close([h[i, :n] for h in batched.hidden_states], ref)


# --------------------------------------------------------------------------- wav2vec 2.0


def _w2v_fields(**over):
    base = dict(extractor_mode="default", encoder_layers=2, encoder_embed_dim=48, encoder_ffn_embed_dim=96,
                encoder_attention_heads=4, conv_feature_layers=CONV, conv_pos=16, conv_pos_groups=4,
                layer_norm_first=False, conv_bias=False, dropout=0.1, attention_dropout=0.1,
                activation_dropout=0.0, dropout_input=0.1, encoder_layerdrop=0.05, final_dim=16,
                latent_vars=8, latent_groups=2)
    base.update(over)
    return base


@pytest.mark.parametrize(
    "variant",
    [
        # wav2vec_small.pt: argparse args, group-norm CNN, post-LN, no input normalisation
        dict(fields={}, normalize=False, layout="args"),
        # Large-style: layer-norm CNN with biases, pre-LN, normalised input, CNN width == model width
        # (so fairseq has no post_extract_proj); config as a plain-dict cfg like newer fairseq saves
        dict(fields=dict(extractor_mode="layer_norm", layer_norm_first=True, conv_bias=True,
                         conv_feature_layers=CONV.replace("32", "48")), normalize=True, layout="cfg"),
    ],
    ids=["base-style-args", "large-style-cfg"],
)
def test_wav2vec2_matches_s3prl(s3prl, tmp_path: Path, variant):
    fields = _w2v_fields(**variant["fields"])
    torch.manual_seed(0)
    ref_model = s3prl.w2.Wav2Vec2Model(s3prl.w2.Wav2Vec2Config(**fields))
    _perturb(ref_model, 1)
    state = ref_model.state_dict()
    task = {"normalize": variant["normalize"], "sample_rate": 16000}
    torch.save({"task_cfg": task, "model_cfg": fields, "model_weight": state}, tmp_path / "s3prl.pt")
    if variant["layout"] == "args":
        ckpt = {"args": argparse.Namespace(arch="wav2vec2", task="audio_pretraining", **fields, **task), "model": state,
                "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "num_updates": 400000}],
                "extra_state": {"epoch": 3, "best": np.float64(1.5)}}
    else:
        ckpt = {"cfg": {"model": {"_name": "wav2vec2", **fields}, "task": {"_name": "audio_pretraining", **task}},
                "model": state}
    torch.save(ckpt, tmp_path / "fairseq.pt")

    expert = s3prl.w2_expert.UpstreamExpert(str(tmp_path / "s3prl.pt")).eval()
    ours = Wav2Vec2Plugin().build(Wav2Vec2Params(checkpoint=tmp_path / "fairseq.pt"), seed=0)
    assert ours.normalize is variant["normalize"]
    assert ours.num_hidden_states == 3
    _compare(ours, expert, _waves(2))


# --------------------------------------------------------------------------- HuBERT


def test_hubert_matches_s3prl(s3prl, tmp_path: Path):
    fields = dict(_w2v_fields(), label_rate=50.0, final_dim=16)
    for k in ("latent_vars", "latent_groups"):
        fields.pop(k)
    symbols = [f"{i}" for i in range(12)]
    torch.manual_seed(0)
    task_cfg = s3prl.hu.HubertPretrainingConfig(normalize=False, label_rate=50.0)
    ref_model = s3prl.hu.HubertModel(s3prl.hu.HubertConfig(**fields), task_cfg, [symbols])
    _perturb(ref_model, 3)
    state = ref_model.state_dict()
    assert "label_embs_concat" in state
    torch.save({"task_cfg": {"normalize": False, "label_rate": 50.0}, "model_cfg": fields, "model_weight": state,
                "dictionaries_symbols": [symbols]}, tmp_path / "s3prl.pt")

    # hubert_base_ls960.pt layout: an omegaconf cfg (enum-valued and interpolated fields) and a
    # task_state with fairseq Dictionary objects, neither package importable at load time
    with fairseq_like_classes() as fake:
        model_cfg = {"_name": "hubert", **fields, "extractor_mode": fake.ExtractorMode("default"),
                     "label_rate": "${task.label_rate}"}
        cfg = fake.DictConfig({"model": model_cfg,
                               "task": {"_name": "hubert_pretraining", "normalize": False, "label_rate": 50.0}})
        torch.save({"cfg": cfg, "model": state, "task_state": {"dictionaries": [fake.Dictionary(symbols)]}},
                   tmp_path / "hubert.pt")
    assert "omegaconf.dictconfig" not in sys.modules or not hasattr(sys.modules["omegaconf.dictconfig"], "DictConfig")

    expert = s3prl.hu_expert.UpstreamExpert(str(tmp_path / "s3prl.pt")).eval()
    ours = HubertPlugin().build(HubertParams(checkpoint=tmp_path / "hubert.pt"), seed=0)
    _compare(ours, expert, _waves(4))

    # the pre-training head is kept: pseudo-labels rank the codebook as HuBERT's own logits do
    assert ours.codebook_size == len(symbols)
    ref_model.eval()
    saved = tmp_path / "saved"
    save_model(ours, saved)
    reloaded = HubertPlugin().build(HubertParams(checkpoint=saved), seed=0)
    assert reloaded.config()["codebook"] == [len(symbols), fields["final_dim"]]
    for wav in _waves(5, lengths=(16000, 9000)):
        with torch.no_grad():
            x, _ = ref_model.extract_features(wav[None])
            proj, codebook = ref_model.final_proj(x)[:, :, None, :], ref_model.label_embs_concat[None, None]
            expected = torch.cosine_similarity(proj, codebook, dim=-1).argmax(-1)[0]
        for model in (ours, reloaded):
            labels, lengths = model.pseudo_labels(wav[None], torch.tensor([len(wav)]))
            assert int(lengths[0]) == len(expected) and torch.equal(labels[0], expected)
        assert len(set(expected.tolist())) > 1

    with pytest.raises(CheckpointError, match="is a hubert checkpoint, not a wav2vec2 one"):
        Wav2Vec2Plugin().build(Wav2Vec2Params(checkpoint=tmp_path / "hubert.pt"), seed=0)
    state.pop("encoder.layers.1.fc2.weight")
    torch.save({"cfg": {"model": {"_name": "hubert", **fields}, "task": {"normalize": False}}, "model": state},
               tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match=r"lacks 1 weights a hubert model needs "
                                              r"\(encoder.layers.1.feed_forward.output_dense.weight\)"):
        HubertPlugin().build(HubertParams(checkpoint=tmp_path / "incomplete.pt"), seed=0)


# --------------------------------------------------------------------------- DeCoAR 2.0


def test_decoar2_matches_s3prl(s3prl, tmp_path: Path, monkeypatch):
    # the release architecture, narrowed (s3prl's Decoar2 reads its sizes from a module-level dict)
    small = {"encoder_embed_dim": 128, "encoder_layers": 2, "encoder_ffn_embed_dim": 192,
             "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 8}
    monkeypatch.setattr(s3prl.d2, "args", {**s3prl.d2.args, **small})
    torch.manual_seed(0)
    ref = s3prl.d2.Decoar2()
    _perturb(ref, 5)
    # the release file: {"model": weights} and nothing else
    torch.save({"model": ref.state_dict()}, tmp_path / "checkpoint_decoar2.pt")

    expert = s3prl.d2_expert.UpstreamExpert(str(tmp_path / "checkpoint_decoar2.pt")).eval()
    ours = Decoar2Plugin().build(Decoar2Params(checkpoint=tmp_path / "checkpoint_decoar2.pt"), seed=0)
    assert ours.config()["num_attention_heads"] == 2 and ours.num_hidden_states == 3
    assert ours.frame_shift == pytest.approx(0.02)
    _compare(ours, expert, _waves(6, lengths=(16000, 9000)))

    with pytest.raises(CheckpointError, match="is a decoar2 checkpoint, not a hubert one"):
        HubertPlugin().build(HubertParams(checkpoint=tmp_path / "checkpoint_decoar2.pt"), seed=0)
