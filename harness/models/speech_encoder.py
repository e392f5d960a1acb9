"""Pieces shared by the transformer upstreams (wav2vec 2.0, HuBERT, DeCoAR 2.0).

- :func:`run_encoder`: the wav2vec 2.0 transformer encoder (transformers' ``Wav2Vec2Encoder`` or
  ``Wav2Vec2EncoderStableLayerNorm`` modules) run layer by layer, so that the hidden states are the
  input of each layer plus the final output (s3prl's convention), with padding masks, layer drop
  and gradient checkpointing under our control.
- padding helpers (:func:`frame_mask`, :func:`mean_pool`, :func:`masked_norm_stats`).
- :class:`SourceParams` and :func:`load_own_model`: the ``checkpoint``/``preset`` parameters and
  the harness's own model folders (``upstream.json`` + ``model.safetensors``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch.utils.checkpoint import checkpoint

from harness.core.errors import CheckpointError
from harness.core.model_types import UpstreamModel
from harness.models.checkpoints import check_keys, read_config_object
from harness.models.model_io import CONFIG, WEIGHTS
from harness.models.packed_encoder import Packing, packed_layer
from harness.models.upstream_speed import positional_embedding

# --------------------------------------------------------------------------- padding


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """B×T boolean mask, True on the valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def mean_pool(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames of each utterance: B×T×D -> B×D (an empty utterance gives zeros)."""
    mask = frame_mask(lengths, features.shape[1]).unsqueeze(-1).to(features.dtype)
    return (features * mask).sum(dim=1) / lengths.clamp(min=1).view(-1, 1).to(features.dtype)


def masked_norm_stats(
    x: torch.Tensor, mask: torch.Tensor, dim: int, unbiased: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``x`` over ``dim`` counting only positions where ``mask`` (broadcastable) is
    True; computed in float32. Unbiased variance divides by n-1 (n-1 = 0 gives 0)."""
    xf = x.float()
    m = mask.to(xf.dtype)
    n = m.sum(dim, keepdim=True)
    mean = (xf * m).sum(dim, keepdim=True) / n.clamp(min=1)
    sq = (((xf - mean) * m) ** 2).sum(dim, keepdim=True)
    var = sq / (n - 1).clamp(min=1) if unbiased else sq / n.clamp(min=1)
    return mean, var


def normalize_waveforms(wavs: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """fairseq's ``normalize``: per-utterance zero mean, unit variance over the valid samples
    (``F.layer_norm(wav, wav.shape)`` on each unpadded waveform); padding stays zero."""
    mask = frame_mask(lengths, wavs.shape[1])
    mean, var = masked_norm_stats(wavs, mask, dim=1)
    out = (wavs.float() - mean) * torch.rsqrt(var + eps)
    return (out * mask).to(wavs.dtype)


# --------------------------------------------------------------------------- encoder


def _attention_mask(
    config: Any, x: torch.Tensor, mask: torch.Tensor, all_valid: bool | None = None
) -> torch.Tensor | None:
    """The layers' padding mask for the attention kernel ``config`` selects, or None without padding
    (``all_valid``: known on the host; else read from ``mask``, a device sync on a GPU).

    SDPA gets a B×1×1×T boolean mask and eager attention an additive one, built here without reading
    the mask back (transformers' ``create_bidirectional_mask`` checks it on the host); other kernels
    take transformers' mask."""
    if all_valid if all_valid is not None else bool(mask.all()):
        return None
    keys = mask[:, None, None, :]
    kernel = getattr(config, "_attn_implementation", None) or "eager"
    if kernel == "sdpa":
        return keys
    if kernel == "eager":
        return (~keys).to(x.dtype) * torch.finfo(x.dtype).min
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=config, inputs_embeds=x, attention_mask=mask)


def _call_layer(layer: torch.nn.Module, x: torch.Tensor, attn: torch.Tensor | None) -> torch.Tensor:
    out = layer(x, attention_mask=attn)
    return out[0] if isinstance(out, tuple) else out


def run_encoder(
    encoder: torch.nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    *,
    config: Any,
    stable_layer_norm: bool,
    layerdrop: float = 0.0,
    gradient_checkpointing: bool = False,
    pos_conv: str = "conv",
    attention: str = "padded",
    frame_counts: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Hidden states of a wav2vec 2.0 encoder: the input of each layer, then the final output.

    ``x`` is B×T×D (projected features), ``mask`` B×T (True = valid). Padded frames are zeroed
    before the positional convolution (as fairseq does) and in every returned hidden state, so the
    valid frames do not depend on what else is in the batch. Post-LN encoders (``layer_norm_first``
    False) normalise after adding the positional embedding; pre-LN ones normalise the last output.
    ``pos_conv`` (``conv`` or ``fft``) is the form of the positional convolution
    (:func:`harness.models.upstream_speed.positional_embedding`); ``attention`` (``padded`` or
    ``packed``) whether the layers run on the padded batch with a mask or on the valid frames only
    (:mod:`harness.models.packed_encoder`; a batch without padding always runs padded, mask-free).
    ``frame_counts``, the valid frames of each utterance on the host, spare the encoder every read of
    the mask back from the device (each one a sync that stalls a GPU's queue of kernels).
    """
    keep = mask[..., None]
    x = x.masked_fill(~keep, 0.0)
    frames = mask.shape[1]
    all_valid = bool(mask.all()) if frame_counts is None else all(int(n) >= frames for n in frame_counts)
    packing = None
    if attention == "packed" and not all_valid:
        packing = (Packing.from_mask(mask) if frame_counts is None
                   else Packing.from_counts(list(frame_counts), frames, x.device))
    attn = _attention_mask(config, x, mask, all_valid) if packing is None else None
    x = x + positional_embedding(encoder.pos_conv_embed, x, pos_conv)
    if not stable_layer_norm:
        x = encoder.layer_norm(x)
    x = encoder.dropout(x)
    if packing is not None:
        x = packing.pack(x)
    hidden = []
    training = encoder.training
    for layer in encoder.layers:
        hidden.append(x)
        if training and layerdrop > 0.0 and float(torch.rand(())) < layerdrop:
            continue
        args = (layer, x, attn) if packing is None else (layer, x, packing, stable_layer_norm)
        run_layer = _call_layer if packing is None else packed_layer
        if gradient_checkpointing and training and torch.is_grad_enabled():
            x = checkpoint(run_layer, *args, use_reentrant=False)
        else:
            x = run_layer(*args)
    if stable_layer_norm:
        x = encoder.layer_norm(x)
    hidden.append(x)
    if packing is not None:
        return [packing.unpack(h) for h in hidden]
    return [h.masked_fill(~keep, 0.0) for h in hidden]


# --------------------------------------------------------------------------- own model folders


def own_model_files(path: Path) -> tuple[Path, Path] | None:
    """(upstream.json, model.safetensors) when ``path`` is a harness model folder or its weights file."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if (folder / CONFIG).is_file() and (path.is_dir() or path.suffix == ".safetensors"):
        weights = path if path.is_file() else folder / WEIGHTS
        return folder / CONFIG, weights
    return None


def load_own_model(
    path: Path, family: str, from_config: Callable[[dict[str, Any]], UpstreamModel]
) -> UpstreamModel:
    """A model saved by :func:`harness.models.model_io.save_model`, checked to be of ``family``."""
    config_path, weights = own_model_files(path)  # type: ignore[misc]
    meta = read_config_object(config_path, "with family and config")
    found = meta.get("family")
    if found != family:
        raise CheckpointError(
            f"{path} holds a {found} model, not a {family} one; load it with the {found} upstream."
        )
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the model folder {config_path.parent} is incomplete.")
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise CheckpointError(
            f"{weights} is truncated or not a safetensors file ({str(exc)[:120]}); copy it again."
        ) from None
    return build_checked(from_config, meta.get("config", {}), state, config_path, family)


def build_checked(
    from_config: Callable[[dict[str, Any]], Any], config: Any, state: dict[str, torch.Tensor], where: Path, family: str
) -> Any:
    """``from_config(config)`` with ``state`` loaded, once the config is known to fit the weights.

    The model is first built on the ``meta`` device (shapes only, no memory), so that a config that
    is not a mapping, has a wrong type or an inconsistent field, or declares shapes the weights do not
    have (``hidden_size: 200000``, 64 layers where the file has 2) is refused in one sentence before
    anything is allocated.
    """
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{where} holds a model config that is a {type(config).__name__}, not a mapping of fields; "
            "the model files are damaged."
        )
    try:
        with torch.device("meta"):
            skeleton = from_config(config)
    except CheckpointError:
        raise
    except Exception as exc:  # any failure to build from a config read from disk is the config's
        raise CheckpointError(
            f"{where} holds a config that does not describe a {family} model ({error_gist(exc)}); "
            "the model files are damaged or of another architecture."
        ) from None
    check_state_fits(skeleton, state, where, family)
    model = from_config(config)
    load_exact(model, state, where, family)
    return model


def error_gist(exc: Exception) -> str:
    """The gist of an exception: its last non-empty line (validators put the cause there), clipped."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].rstrip(".")[:160] if lines else type(exc).__name__


def check_state_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path, family: str) -> None:
    """Raise one sentence unless every weight ``model`` needs is in ``state`` with the same shape
    (absent ``model.optional_weights`` are allowed); ``model`` may live on the ``meta`` device."""
    needed = model.state_dict()
    optional = getattr(model, "optional_weights", ())
    given = set(state) | {k for k in optional if k in needed}
    check_keys(needed, given, where, family)
    for key, ref in needed.items():
        if key in state and tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{where} has {key} of shape {tuple(state[key].shape)} where its config implies "
                f"{tuple(ref.shape)}; the weights and the config disagree."
            )


def load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], where: Path, family: str) -> None:
    """Load ``state`` into ``model``: every needed weight present (extra ones ignored, absent
    ``model.optional_weights`` kept as initialised), shapes equal."""
    check_state_fits(model, state, where, family)
    needed = model.state_dict()
    optional = getattr(model, "optional_weights", ())
    state = {**{k: needed[k] for k in optional if k in needed and k not in state}, **state}
    model.load_state_dict({k: state[k] for k in needed}, strict=True)
