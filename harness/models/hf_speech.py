"""wav2vec 2.0 / HuBERT upstreams built from transformers modules, loaded from three kinds of source.

Shared by the ``wav2vec2`` and ``hubert`` plugins, which set the transformers classes, family name
and presets. The model holds transformers' ``feature_extractor`` (CNN), ``feature_projection`` and
``encoder`` modules directly, so its state dict uses transformers' ``Wav2Vec2Model``/``HubertModel``
names (a merged ``model.safetensors`` loads into transformers as it is).

Sources (:meth:`SpeechTransformerPlugin.build`):

- a harness model folder (``upstream.json`` + ``model.safetensors``) or its weights file;
- a transformers folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``); input
  normalisation follows its ``preprocessor_config.json`` (``do_normalize``), or, without one,
  fairseq's rule (normalise iff the CNN uses layer norm);
- a fairseq checkpoint (``.pt``), read safely, with the architecture from its own ``args``/``cfg``.

Padding: the group norm of the first CNN block (``extractor_mode=default``) normalises over time;
here its statistics count only valid frames, so a padded batch gives the same valid frames as each
utterance alone.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from harness.core.errors import CheckpointError
from harness.core.hub import missing_checkpoint
from harness.core.interfaces import UpstreamPlugin
from harness.core.model_types import UpstreamModel, UpstreamOutput
from harness.core.seeding import seeded
from harness.models.checkpoints import (
    check_keys,
    load_torch_checkpoint,
    load_weights_file,
    read_config_object,
    tensors_only,
)
from harness.models.fairseq import (
    checkpoint_configs,
    detect_family,
    hf_architecture,
    hf_legacy_names,
    map_wav2vec2_state,
    unwrap_finetuned,
)
from harness.models.feature_conv import check_feature_conv, cnn_time_major
from harness.models.packed_encoder import resolve_attention
from harness.models.sources import SourceParams
from harness.models.speech_encoder import (
    build_checked,
    error_gist,
    frame_mask,
    load_own_model,
    normalize_waveforms,
    own_model_files,
    run_encoder,
)
from harness.models.upstream_speed import resolve_pos_conv

log = logging.getLogger("harness.models.hf_speech")

#: config fields and weights of a kept pre-training head (see ``fairseq_pretraining_head``)
PretrainingHead = tuple[dict[str, Any], dict[str, torch.Tensor]]


#: Architecture fields kept in ``UpstreamModel.config()`` (transformers' names), plus ``normalize``.
ARCH_FIELDS = (
    "conv_dim",
    "conv_kernel",
    "conv_stride",
    "conv_bias",
    "feat_extract_norm",
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "hidden_act",
    "do_stable_layer_norm",
    "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
    "layerdrop",
    "layer_norm_eps",
)


class SpeechTransformer(UpstreamModel):
    """A wav2vec 2.0-style model: CNN on the waveform, projection, transformer encoder.

    Subclasses set ``family``, ``hf_config_cls``, ``hf_model_cls`` and ``extra_fields`` (config
    fields beyond :data:`ARCH_FIELDS`, e.g. HuBERT's ``feat_proj_layer_norm``).
    """

    hf_config_cls: ClassVar[type]
    hf_model_cls: ClassVar[type]
    extra_fields: ClassVar[tuple[str, ...]] = ()
    optional_weights = ("masked_spec_embed",)
    masks_frames = True

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        fields = ARCH_FIELDS + self.extra_fields
        arch = {k: config[k] for k in fields if k in config}
        hf_config = self.hf_config_cls(
            **arch, mask_time_prob=0.0, mask_feature_prob=0.0, apply_spec_augment=False
        )
        hf = self.hf_model_cls(hf_config)
        self.feature_extractor = hf.feature_extractor
        self.feature_projection = hf.feature_projection
        self.encoder = hf.encoder
        self.hf_config = hf.config
        self._arch = {k: _jsonable(getattr(hf.config, k)) for k in fields}
        self.normalize = bool(config.get("normalize", False))
        self.hidden_size = int(hf.config.hidden_size)
        self.num_hidden_states = int(hf.config.num_hidden_layers) + 1
        self._kernels = [int(k) for k in hf.config.conv_kernel]
        self._strides = [int(s) for s in hf.config.conv_stride]
        self.frame_shift = math.prod(self._strides) / self.sample_rate
        self._layerdrop = float(hf.config.layerdrop)
        self._checkpointing = False
        self.pos_conv_mode = "auto"  # see harness.models.upstream_speed.resolve_pos_conv
        self.attention_mode = "auto"  # see harness.models.packed_encoder.resolve_attention
        self.feature_conv_mode = "conv"  # see harness.models.feature_conv
        # transformers' learned mask embedding (fairseq's ``mask_emb``): what ``masked_frames`` puts in place
        # of the masked features (continued pre-training), and kept so that a saved or merged model holds
        # every weight of its transformers counterpart. A buffer, so that training leaves it alone; drawn
        # from its own generator, so presets' weights do not move.
        init = torch.rand(self.hidden_size, generator=torch.Generator().manual_seed(0))
        self.register_buffer("masked_spec_embed", init)

    # ---------------------------------------------------------------- interface

    def config(self) -> dict[str, Any]:
        return {**self._arch, "normalize": self.normalize}

    def downsampling_module(self) -> torch.nn.Module:
        return self.feature_extractor

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self._checkpointing = bool(enabled)

    def set_layerdrop(self, probability: float) -> None:
        self._layerdrop = float(probability)

    def set_positional_conv(self, mode: str) -> None:
        """The positional convolution's form: ``auto`` (FFT on CUDA, the convolution elsewhere), ``conv``
        or ``fft`` (:mod:`harness.models.upstream_speed`)."""
        resolve_pos_conv(mode, torch.device("cpu"))  # refuses an unknown mode
        self.pos_conv_mode = mode

    def set_feature_conv(self, mode: str) -> None:
        """The CNN feature encoder's form: ``conv`` (transformers', the default) or ``gemm`` (time-major
        matrix products, :mod:`harness.models.feature_conv`)."""
        self.feature_conv_mode = check_feature_conv(mode)

    def set_attention(self, mode: str) -> None:
        """How the layers treat padding: ``auto`` (the padded path), ``padded`` or ``packed``
        (:mod:`harness.models.packed_encoder`)."""
        resolve_attention(mode, torch.device("cpu"))  # refuses an unknown mode
        self.attention_mode = mode

    @property
    def receptive_field(self) -> int:
        """Samples needed for one frame."""
        field = 1
        for k, s in zip(reversed(self._kernels), reversed(self._strides)):
            field = (field - 1) * s + k
        return field

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        n = wav_lengths.long()
        for k, s in zip(self._kernels, self._strides):
            n = torch.div(n - k, s, rounding_mode="floor") + 1
        return n.clamp(min=0)

    # ---------------------------------------------------------------- forward

    def _cnn(self, wavs: torch.Tensor, host_lengths: torch.Tensor) -> torch.Tensor:
        x = wavs[:, None, :]
        n = host_lengths
        for layer, k, s in zip(self.feature_extractor.conv_layers, self._kernels, self._strides):
            x = layer.conv(x)
            n = torch.div(n - k, s, rounding_mode="floor") + 1
            norm = getattr(layer, "layer_norm", None)
            if isinstance(norm, torch.nn.GroupNorm):
                x = _masked_group_norm(x, n.tolist(), norm)
            elif norm is not None:
                x = norm(x.transpose(1, 2)).transpose(1, 2)
            x = layer.activation(x)
        return x

    def _features(self, wavs: torch.Tensor, host_lengths: torch.Tensor) -> torch.Tensor:
        """The CNN's frames, B×T×C, in the form :meth:`set_feature_conv` chose."""
        if self.feature_conv_mode == "gemm":
            return cnn_time_major(self.feature_extractor.conv_layers, self._strides, wavs, host_lengths.tolist())
        return self._cnn(wavs, host_lengths).transpose(1, 2)

    def forward(
        self, wavs: torch.Tensor, wav_lengths: torch.Tensor, masked_frames: torch.Tensor | None = None
    ) -> UpstreamOutput:
        """Lengths given on the host (as :meth:`WaveBatch.to` leaves them) make the forward read nothing
        back from the device; lengths on the device are read once. ``masked_frames`` (B×T booleans) replace
        those frames' projected features by ``masked_spec_embed`` before the encoder, as transformers'
        ``mask_time_indices`` does."""
        host_lengths = wav_lengths.long().cpu()
        lengths = host_lengths.to(wavs.device, non_blocking=True)
        if wavs.shape[1] < self.receptive_field:  # too short for one frame: those get 0 frames
            wavs = F.pad(wavs, (0, self.receptive_field - wavs.shape[1]))
        if self.normalize:
            wavs = normalize_waveforms(wavs, lengths)
        else:
            wavs = wavs * frame_mask(lengths, wavs.shape[1])
        if self._checkpointing and self.training and torch.is_grad_enabled():
            x = checkpoint(self._features, wavs, host_lengths, use_reentrant=False)
        else:
            x = self._features(wavs, host_lengths)
        proj = self.feature_projection
        norm = getattr(proj, "layer_norm", None)
        if norm is not None and getattr(self.hf_config, "feat_proj_layer_norm", True):
            x = norm(x)
        x = proj.dropout(proj.projection(x))
        if masked_frames is not None:
            masked = masked_frames[:, : x.shape[1]].to(x.device)
            masked = F.pad(masked, (0, x.shape[1] - masked.shape[1]))
            x = torch.where(masked[..., None], self.masked_spec_embed.to(x.dtype), x)
        host_frames = self.frame_lengths(host_lengths).clamp(max=x.shape[1])
        n_frames = host_frames.to(x.device, non_blocking=True)
        hidden = run_encoder(
            self.encoder,
            x,
            frame_mask(n_frames, x.shape[1]),
            config=self.hf_config,
            stable_layer_norm=bool(self.hf_config.do_stable_layer_norm),
            layerdrop=self._layerdrop,
            gradient_checkpointing=self._checkpointing,
            pos_conv=resolve_pos_conv(self.pos_conv_mode, x.device),
            attention=resolve_attention(self.attention_mode, x.device),
            frame_counts=host_frames.tolist(),
        )
        return UpstreamOutput(hidden_states=hidden, lengths=n_frames)


def _masked_group_norm(x: torch.Tensor, lengths: list[int], norm: torch.nn.GroupNorm) -> torch.Tensor:
    """The first CNN block's group norm (one channel per group, statistics over time) with each
    utterance's statistics taken over its ``lengths`` valid frames only, as for the utterance alone."""
    frames = x.shape[-1]
    counts = [min(max(int(n), 1), frames) for n in lengths]
    if all(n == frames for n in counts):
        return norm(x)
    stats = [torch.var_mean(x[i, :, :n].float(), dim=-1, unbiased=False) for i, n in enumerate(counts)]
    var = torch.stack([v for v, _ in stats])[..., None]
    mean = torch.stack([m for _, m in stats])[..., None]
    scale = torch.rsqrt(var + norm.eps)
    shift = -mean * scale
    if norm.affine:
        scale = scale * norm.weight.float()[None, :, None]
        shift = shift * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return torch.addcmul(shift, x.float(), scale).to(x.dtype)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- plugin


#: the ``Params`` of a wav2vec 2.0-family plugin: a checkpoint or a preset
SP = TypeVar("SP", bound=SourceParams)


class SpeechTransformerPlugin(UpstreamPlugin[SP]):
    """Base of the ``wav2vec2`` and ``hubert`` plugins (``Params``: their :class:`SourceParams`):
    presets and the three sources."""

    model_cls: ClassVar[type[SpeechTransformer]]
    #: the transformers ``model_type`` of this family's folders
    hf_model_type: ClassVar[str]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    export_formats = ("hf",)

    def from_config(self, config: dict[str, Any]) -> SpeechTransformer:
        return self.model_cls(config)

    def export(self, model: UpstreamModel, fmt: str, out_dir: Path) -> None:
        """A transformers folder (``save_pretrained``: ``config.json`` with ``model_type``, every weight of
        ``Wav2Vec2Model``/``HubertModel``, and a ``preprocessor_config.json`` saying whether to normalise).

        The config keeps transformers' defaults for what only its training uses (SpecAugment masking);
        a pre-training head (HuBERT's codebook) has no place there and is left out.
        """
        if fmt != "hf":
            super().export(model, fmt, out_dir)
        assert isinstance(model, SpeechTransformer)
        arch = {k: v for k, v in model.config().items() if k in ARCH_FIELDS + self.model_cls.extra_fields}
        hf_config = self.model_cls.hf_config_cls(**arch)
        hf_config.architectures = [self.model_cls.hf_model_cls.__name__]
        hf = self.model_cls.hf_model_cls(hf_config)
        ours = model.state_dict()
        needed = hf.state_dict()
        check_keys(needed, ours, Path(f"the {model.family} model"), self.name)
        dropped = sorted(set(ours) - set(needed))
        if dropped:
            log.info("left out of the transformers folder (no place in %s): %s",
                     self.model_cls.hf_model_cls.__name__, ", ".join(dropped))
        hf.load_state_dict({k: ours[k].detach().cpu() for k in needed}, strict=True)
        out_dir = Path(out_dir)
        hf.save_pretrained(out_dir)
        extractor = {
            "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": model.sample_rate,
            "padding_value": 0.0, "padding_side": "right", "do_normalize": model.normalize,
            "return_attention_mask": hf_config.feat_extract_norm == "layer",
        }
        (out_dir / "preprocessor_config.json").write_text(json.dumps(extractor, indent=2) + "\n")

    def build(self, params: SP, seed: int) -> SpeechTransformer:
        checkpoint_path = params.checkpoint
        if checkpoint_path is None:
            preset = params.preset
            if preset not in self.presets:
                raise CheckpointError(
                    f"{self.name} has no preset {preset!r}; choose one of {', '.join(self.presets)}."
                )
            with seeded(seed):
                model = self.model_cls(self.presets[preset])
        else:
            model = self.load(Path(checkpoint_path))
        model.eval()
        return model

    def load(self, path: Path) -> SpeechTransformer:
        """The model stored at ``path`` (a harness folder, a transformers folder or a fairseq file)."""
        if not path.exists():
            raise CheckpointError(missing_checkpoint(path))
        if own_model_files(path) is not None:
            return load_own_model(path, self.name, self.from_config)  # type: ignore[return-value]
        folder = path if path.is_dir() else path.parent
        if (folder / "config.json").is_file() and (path.is_dir() or path.suffix in (".safetensors", ".bin")):
            return self._load_hf_folder(folder)
        if path.is_dir():
            raise CheckpointError(
                f"{path} holds neither upstream.json (a harness model folder) nor config.json (a transformers "
                "folder); point checkpoint at one of those or at a fairseq .pt file."
            )
        return self._load_fairseq(path)

    # ---------------------------------------------------------------- transformers folders

    def _load_hf_folder(self, folder: Path) -> SpeechTransformer:
        raw = read_config_object(folder / "config.json", "of config fields")
        model_type = raw.get("model_type")
        if model_type != self.hf_model_type:
            raise CheckpointError(
                f"{folder} holds a transformers {model_type!r} model, not a {self.hf_model_type} one; "
                f"load it with the matching upstream."
            )
        try:
            hf_config = self.model_cls.hf_config_cls.from_dict(raw)
        except Exception as exc:  # transformers' validators raise their own types
            raise CheckpointError(
                f"{folder / 'config.json'} holds a config that does not describe a {self.name} model "
                f"({error_gist(exc)}); the folder is damaged or of another architecture."
            ) from None
        for flag, bad in (("add_adapter", True), ("conv_pos_batch_norm", True)):
            if getattr(hf_config, flag, None) == bad:
                raise CheckpointError(f"{folder} uses {flag}, which this upstream does not support.")
        if getattr(hf_config, "adapter_attn_dim", None) is not None:
            raise CheckpointError(f"{folder} has attention adapters (adapter_attn_dim), which are not supported.")
        config = {k: _jsonable(getattr(hf_config, k)) for k in ARCH_FIELDS + self.model_cls.extra_fields}
        config["normalize"] = _hf_normalize(folder, hf_config)
        state = _hf_weights(folder)
        prefix = f"{model_type}."
        state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}
        return build_checked(self.model_cls, config, hf_legacy_names(state), folder / "config.json", self.name)

    # ---------------------------------------------------------------- fairseq checkpoints

    def _load_fairseq(self, path: Path) -> SpeechTransformer:
        ckpt = load_torch_checkpoint(path)
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
            raise CheckpointError(
                f"{path} is not a fairseq checkpoint (no 'model' state dict inside); give a fairseq .pt, "
                "a transformers folder or a harness model folder."
            )
        state = tensors_only(ckpt["model"], path)
        model_cfg, task_cfg = checkpoint_configs(ckpt)
        state, model_cfg, task_cfg = unwrap_finetuned(state, model_cfg, task_cfg)
        found = detect_family(model_cfg, set(state))
        if found != self.name:
            what = f"a {found} checkpoint" if found else "not a recognisable checkpoint"
            raise CheckpointError(f"{path} is {what}, not a {self.name} one; load it with the matching upstream.")
        if not model_cfg:
            raise CheckpointError(f"{path} carries no model config (neither 'cfg' nor 'args'); it cannot be rebuilt.")
        try:
            config: dict[str, Any] = hf_architecture(model_cfg, path)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path} holds a model config with a field of the wrong type ({str(exc)[:160]}); "
                "the checkpoint is damaged."
            ) from None
        config.update(self.fairseq_extra_config())
        config["normalize"] = bool(task_cfg.get("normalize", model_cfg.get("normalize", False)))
        mapped = map_wav2vec2_state(state)
        if isinstance(state.get("mask_emb"), torch.Tensor):
            mapped["masked_spec_embed"] = state["mask_emb"]
        head_config, head_state = self.fairseq_pretraining_head(state)
        config.update(head_config)
        mapped.update(head_state)
        last_conv = mapped.get(f"feature_extractor.conv_layers.{len(config['conv_dim']) - 1}.conv.weight")
        if (
            "feature_projection.projection.weight" not in mapped
            and config["conv_dim"][-1] == config["hidden_size"]
            and last_conv is not None
            and last_conv.shape[0] == config["hidden_size"]
        ):
            # fairseq has no post_extract_proj when the CNN width equals the model width: an identity
            mapped["feature_projection.projection.weight"] = torch.eye(config["hidden_size"])
            mapped["feature_projection.projection.bias"] = torch.zeros(config["hidden_size"])
        return build_checked(self.model_cls, config, mapped, path, self.name)

    def fairseq_extra_config(self) -> dict[str, Any]:
        """Config fields implied by the family for fairseq checkpoints."""
        return {}

    def fairseq_pretraining_head(self, state: dict[str, torch.Tensor]) -> PretrainingHead:
        """Config fields and weights (our names) of a pre-training head the family keeps; none by default."""
        return {}, {}


def _hf_normalize(folder: Path, hf_config: Any) -> bool:
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        try:
            return bool(json.loads(pre.read_text()).get("do_normalize", True))
        except (OSError, json.JSONDecodeError):
            raise CheckpointError(f"{pre} is not valid JSON.") from None
    return hf_config.feat_extract_norm == "layer"


def _hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    single = folder / "model.safetensors"
    if single.is_file():
        return load_weights_file(single)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"{index} is not a valid shard index ({exc}).") from None
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_weights_file(folder / shard))
        return state
    legacy = folder / "pytorch_model.bin"
    if legacy.is_file():
        return load_weights_file(legacy)
    raise CheckpointError(
        f"{folder} has a config.json but no model.safetensors or pytorch_model.bin; the folder is incomplete."
    )
