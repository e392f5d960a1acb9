"""The model of the ``decoar2`` upstream (:mod:`plugins.upstreams.decoar2`; the architecture and the
release layout are described there): imported when a model is built, so registering the plugin
loads neither torch nor transformers."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from transformers import Wav2Vec2Config
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2Encoder, Wav2Vec2EncoderStableLayerNorm

from harness.api import (
    ENCODER_SHAPES,
    ENCODER_TRAINING,
    CheckpointError,
    KaldiFbank,
    SourceParams,
    UpstreamModel,
    UpstreamOutput,
    UpstreamPlugin,
    checkpoint_configs,
    detect_family,
    encoder_key,
    frame_mask,
    load_exact,
    load_own_model,
    load_torch_checkpoint,
    own_model_files,
    reduce_frames,
    resolve_attention,
    run_encoder,
    seeded,
    tensors_only,
    utterance_cmvn,
)

_ENCODER_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "do_stable_layer_norm",
    "hidden_act",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "layerdrop",
    "layer_norm_eps",
)

RELEASE: dict[str, Any] = {
    "num_mel_bins": 80,
    "window": "hamming",
    "cmvn": True,
    "reduce": "skip",
    "reduce_factor": 2,
    **ENCODER_SHAPES["base"],
    **ENCODER_TRAINING,
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {**RELEASE, **ENCODER_SHAPES["tiny"]},
    "small": {
        **RELEASE,
        "reduce": "stack",
        "hidden_size": 192,
        "num_hidden_layers": 4,
        "intermediate_size": 768,
        "num_attention_heads": 4,
        "num_conv_pos_embeddings": 64,
        "num_conv_pos_embedding_groups": 16,
        "do_stable_layer_norm": True,
        "layerdrop": 0.0,
    },
    "base": dict(RELEASE),
}


class Decoar2Upstream(UpstreamModel):
    """fbank -> CMVN -> 20 ms frames -> linear -> wav2vec 2.0 transformer encoder."""

    family = "decoar2"

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        cfg = {**RELEASE, **config}
        if cfg["reduce"] not in ("skip", "stack"):
            raise CheckpointError(f"decoar2 reduce must be skip or stack, not {cfg['reduce']!r}.")
        self._config = cfg
        self.fbank = KaldiFbank(int(cfg["num_mel_bins"]), cfg["window"])
        factor = int(cfg["reduce_factor"])
        in_dim = int(cfg["num_mel_bins"]) * (factor if cfg["reduce"] == "stack" else 1)
        self.post_extract_proj = torch.nn.Linear(in_dim, int(cfg["hidden_size"]))
        self.dropout_input = torch.nn.Dropout(float(cfg["feat_proj_dropout"]))
        enc_config = Wav2Vec2Config(**{k: cfg[k] for k in _ENCODER_FIELDS})
        enc_config._attn_implementation = "sdpa"
        self.enc_config = enc_config
        encoder_cls = Wav2Vec2EncoderStableLayerNorm if cfg["do_stable_layer_norm"] else Wav2Vec2Encoder
        self.encoder = encoder_cls(enc_config)
        self.hidden_size = int(cfg["hidden_size"])
        self._init_weights()
        self.num_hidden_states = int(cfg["num_hidden_layers"]) + 1
        self.frame_shift = self.fbank.hop_length * factor / self.sample_rate
        self._layerdrop = float(cfg["layerdrop"])
        self._checkpointing = False
        self.attention_mode = "auto"  # see harness.models.packed_encoder.resolve_attention

    def _init_weights(self) -> None:
        """fairseq's initialisation of this encoder: N(0, 0.02) linear weights, zero biases, and the
        positional convolution drawn with std sqrt(4 / (kernel × width))."""
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.02)
                torch.nn.init.zeros_(module.bias)
        conv = self.encoder.pos_conv_embed.conv
        k, width = conv.kernel_size[0], self.hidden_size
        with torch.no_grad():
            v = torch.randn_like(conv.parametrizations.weight.original1) * math.sqrt(4.0 / (k * width))
            conv.parametrizations.weight.original1.copy_(v)
            conv.parametrizations.weight.original0.copy_(v.norm(dim=(0, 1), keepdim=True))
            conv.bias.zero_()

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def downsampling_module(self) -> torch.nn.Module:
        """The fbank front end: it has no weights, so stable fine-tuning freezes nothing here."""
        return self.fbank

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self._checkpointing = bool(enabled)

    def set_layerdrop(self, probability: float) -> None:
        self._layerdrop = float(probability)

    def set_attention(self, mode: str) -> None:
        """How the layers treat padding: ``auto``, ``padded`` or ``packed`` (as the wav2vec 2.0 upstreams)."""
        resolve_attention(mode, torch.device("cpu"))  # refuses an unknown mode
        self.attention_mode = mode

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        factor = int(self._config["reduce_factor"])
        return torch.div(self.fbank.num_frames(wav_lengths) + factor - 1, factor, rounding_mode="floor")

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        feats, n = self.fbank(wavs, wav_lengths)
        if self._config["cmvn"]:
            feats = utterance_cmvn(feats, n)
        feats, n = reduce_frames(feats, n, int(self._config["reduce_factor"]), self._config["reduce"])
        x = self.dropout_input(self.post_extract_proj(feats.to(self.post_extract_proj.weight.dtype)))
        hidden = run_encoder(
            self.encoder,
            x,
            frame_mask(n, x.shape[1]),
            config=self.enc_config,
            stable_layer_norm=bool(self._config["do_stable_layer_norm"]),
            layerdrop=self._layerdrop,
            gradient_checkpointing=self._checkpointing,
            attention=resolve_attention(self.attention_mode, x.device),
            frame_counts=self.frame_lengths(wav_lengths.long().cpu()).clamp(max=x.shape[1]).tolist(),
        )
        return UpstreamOutput(hidden_states=hidden, lengths=n)


class Decoar2Builder(UpstreamPlugin[SourceParams]):
    """Builds and rebuilds the models of the registered ``decoar2`` plugin."""

    name = "decoar2"

    def from_config(self, config: dict[str, Any]) -> Decoar2Upstream:
        return Decoar2Upstream(config)

    def build(self, params: SourceParams, seed: int) -> Decoar2Upstream:
        if params.checkpoint is None:
            with seeded(seed):
                model = Decoar2Upstream(PRESETS[params.preset])  # type: ignore[index]
        else:
            path = Path(params.checkpoint)
            if not path.exists():
                raise CheckpointError(f"checkpoint {path} does not exist; check the path.")
            if own_model_files(path) is not None:
                model = load_own_model(path, self.name, self.from_config)  # type: ignore[assignment]
            elif path.is_dir():
                raise CheckpointError(
                    f"{path} is a folder without upstream.json; give the DeCoAR 2.0 release file "
                    "(checkpoint_decoar2.pt) or a harness model folder."
                )
            else:
                model = self._load_release(path)
        model.eval()
        return model

    def _load_release(self, path: Path) -> Decoar2Upstream:
        ckpt = load_torch_checkpoint(path)
        weights = ckpt.get("model") if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) else ckpt
        state = tensors_only(weights, path)
        model_cfg, _ = checkpoint_configs(ckpt) if isinstance(ckpt, dict) else ({}, {})
        found = detect_family(model_cfg, set(state))
        if found != "decoar2":
            what = f"a {found} checkpoint" if found else "not a DeCoAR 2.0 checkpoint (no post_extract_proj.weight)"
            raise CheckpointError(f"{path} is {what}, not a decoar2 one; load it with the matching upstream.")
        config = release_architecture(state, path)
        mapped = {k: v for k, v in state.items() if k.startswith("post_extract_proj.")}
        for key, value in state.items():
            new = encoder_key(key)
            if new is not None:
                mapped[new] = value
        model = Decoar2Upstream(config)
        load_exact(model, mapped, path, self.name)
        return model


def release_architecture(state: dict[str, torch.Tensor], where: Path) -> dict[str, Any]:
    """The architecture of a release-layout state dict, read from its shapes (64-dim heads, post-LN)."""
    try:
        hidden, in_dim = state["post_extract_proj.weight"].shape
        layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
        ffn = state["encoder.layers.0.fc1.weight"].shape[0]
        v = state["encoder.pos_conv.0.weight_v"]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{where} lacks the weights a decoar2 model needs ({exc}); it is incomplete or of another architecture."
        ) from None
    return {
        **RELEASE,
        "num_mel_bins": int(in_dim),
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "intermediate_size": int(ffn),
        "num_attention_heads": max(1, int(hidden) // 64),
        "num_conv_pos_embeddings": int(v.shape[-1]),
        "num_conv_pos_embedding_groups": int(hidden) // int(v.shape[1]),
    }
