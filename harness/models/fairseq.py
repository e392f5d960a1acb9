"""fairseq checkpoints of wav2vec 2.0 / HuBERT (and the DeCoAR 2.0 release): config and weight names.

Shared by the ``wav2vec2``, ``hubert`` and ``decoar2`` upstreams. Nothing here imports fairseq:
checkpoints are read by :mod:`harness.models.checkpoints`, configs arrive as plain dicts.

Released files keep their architecture in one of two places: ``ckpt["args"]`` (an
``argparse.Namespace``, e.g. ``wav2vec_small.pt``) or ``ckpt["cfg"]`` (an omegaconf config with
``model`` and ``task`` sections, e.g. ``hubert_base_ls960.pt``). Fine-tuned CTC checkpoints nest
the pre-trained model under ``w2v_encoder.w2v_model.`` with its config in ``w2v_args``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import CheckpointError
from harness.models.checkpoints import to_plain

#: fairseq's defaults (Wav2Vec2Config / HubertConfig) for fields an old ``args`` may lack.
FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default",
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_type": "transformer",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "layer_norm_first": False,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "pos_conv_depth": 1,
    "quantize_input": False,
    "crop_seq_to_multiple": 1,
}

_MAX_LAYERS = 1000


# --------------------------------------------------------------------------- conv_feature_layers


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """``"[(512, 10, 5)] + [(512, 3, 2)] * 4"`` -> ``[(512, 10, 5), (512, 3, 2), ...]``.

    fairseq stores the CNN as a Python list expression and ``eval``\\ s it. Here the expression is
    parsed into an AST and only list/tuple literals of integers, ``+`` (concatenation) and ``*``
    (repetition by an integer) are evaluated; anything else is rejected.
    """
    try:
        tree = ast.parse(spec.strip(), mode="eval")
        value = _list_expr(tree.body)
    except (SyntaxError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride) triples joined by + and * ({exc})."
        ) from None
    layers = []
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 3 and all(isinstance(v, int) and v > 0 for v in item)):
            raise CheckpointError(
                f"conv_feature_layers {spec!r} holds {item!r}, which is not a (dim, kernel, stride) triple "
                "of positive integers."
            )
        layers.append(item)
    if not layers:
        raise CheckpointError(f"conv_feature_layers {spec!r} describes no layer.")
    return layers


def _list_expr(node: ast.AST) -> list:
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _list_expr(node.left) + _list_expr(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        left, right = node.left, node.right
        if isinstance(left, ast.Constant) and not isinstance(right, ast.Constant):
            left, right = right, left
        times = _literal(right)
        if not isinstance(times, int) or isinstance(times, bool) or not 0 <= times <= _MAX_LAYERS:
            raise ValueError(f"repetition count {times!r} is not an integer in 0..{_MAX_LAYERS}")
        return _list_expr(left) * times
    raise ValueError(f"unexpected {type(node).__name__}")


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    raise ValueError(f"unexpected {type(node).__name__}")


# --------------------------------------------------------------------------- configs


def checkpoint_configs(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, task config) of a fairseq checkpoint as plain dicts (may be empty)."""
    cfg = ckpt.get("cfg")
    if cfg is not None:
        cfg = to_plain(cfg)
        if isinstance(cfg, dict):
            model = cfg.get("model") or {}
            task = cfg.get("task") or {}
            if isinstance(model, dict) and isinstance(task, dict):
                return model, task
    args = ckpt.get("args")
    if args is not None:
        args = to_plain(args)
        if isinstance(args, dict):
            return args, args
    return {}, {}


def model_name(model_cfg: dict[str, Any]) -> str:
    """fairseq's model name (``_name`` in cfg, ``arch`` in args), lower case; '' if absent."""
    name = model_cfg.get("_name") or model_cfg.get("arch") or ""
    return str(name).lower()


def detect_family(model_cfg: dict[str, Any], keys: set[str]) -> str | None:
    """'wav2vec2', 'hubert', 'decoar2', another fairseq model name, or None if unknown."""
    name = model_name(model_cfg)
    if name.startswith("hubert"):
        return "hubert"
    if name.startswith("wav2vec2") or name in ("wav2vec_ctc", "wav2vec_seq2seq"):
        return "wav2vec2"
    if name:
        return name
    if "label_embs_concat" in keys:
        return "hubert"
    if any(k.startswith("quantizer.") for k in keys) or "project_q.weight" in keys:
        return "wav2vec2"
    if "post_extract_proj.weight" in keys and not any(k.startswith("feature_extractor.") for k in keys):
        return "decoar2"
    return None


def unwrap_finetuned(
    state: dict[str, torch.Tensor], model_cfg: dict[str, Any], task_cfg: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """For a fine-tuned CTC checkpoint: the inner pre-trained model's weights and configs."""
    prefix = "w2v_encoder.w2v_model."
    if not any(k.startswith(prefix) for k in state):
        return state, model_cfg, task_cfg
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    w2v_args = to_plain(model_cfg.get("w2v_args"))
    if isinstance(w2v_args, dict) and isinstance(w2v_args.get("model"), dict):
        return inner, w2v_args["model"], w2v_args.get("task") or task_cfg
    if isinstance(w2v_args, dict):
        return inner, w2v_args, w2v_args
    return inner, model_cfg, task_cfg


def hf_architecture(model_cfg: dict[str, Any], where: Path) -> dict[str, Any]:
    """A fairseq wav2vec 2.0 / HuBERT model config -> the architecture fields of a transformers
    ``Wav2Vec2Config``/``HubertConfig`` (names as transformers spells them)."""
    cfg = {**FAIRSEQ_DEFAULTS, **{k: v for k, v in model_cfg.items() if v is not None}}
    if cfg["layer_type"] != "transformer":
        raise CheckpointError(f"{where} uses {cfg['layer_type']} layers; only transformer layers are supported.")
    if int(cfg["pos_conv_depth"]) != 1:
        raise CheckpointError(f"{where} uses a {cfg['pos_conv_depth']}-layer positional convolution "
                              "(data2vec 2.0 style); only the wav2vec 2.0 / HuBERT single convolution is supported.")
    if cfg["quantize_input"]:
        raise CheckpointError(f"{where} quantizes its input (quantize_input); that variant is not supported.")
    if cfg["extractor_mode"] not in ("default", "layer_norm"):
        raise CheckpointError(f"{where} has extractor_mode {cfg['extractor_mode']!r}; expected default or layer_norm.")
    if str(cfg["activation_fn"]) not in ("gelu", "relu", "gelu_fast", "gelu_accurate"):
        raise CheckpointError(f"{where} uses activation {cfg['activation_fn']!r}, which is not supported.")
    if int(cfg["crop_seq_to_multiple"]) != 1:
        raise CheckpointError(f"{where} crops its sequences (crop_seq_to_multiple); that variant is not supported.")
    layers = parse_conv_layers(str(cfg["conv_feature_layers"]))
    act = {"gelu": "gelu", "relu": "relu", "gelu_fast": "gelu_new", "gelu_accurate": "gelu_new"}[
        str(cfg["activation_fn"])
    ]
    return {
        "conv_dim": [d for d, _, _ in layers],
        "conv_kernel": [k for _, k, _ in layers],
        "conv_stride": [s for _, _, s in layers],
        "conv_bias": bool(cfg["conv_bias"]),
        "feat_extract_norm": "group" if cfg["extractor_mode"] == "default" else "layer",
        "hidden_size": int(cfg["encoder_embed_dim"]),
        "num_hidden_layers": int(cfg["encoder_layers"]),
        "intermediate_size": int(cfg["encoder_ffn_embed_dim"]),
        "num_attention_heads": int(cfg["encoder_attention_heads"]),
        "hidden_act": act,
        "do_stable_layer_norm": bool(cfg["layer_norm_first"]),
        "num_conv_pos_embeddings": int(cfg["conv_pos"]),
        "num_conv_pos_embedding_groups": int(cfg["conv_pos_groups"]),
        "hidden_dropout": float(cfg["dropout"]),
        "attention_dropout": float(cfg["attention_dropout"]),
        "activation_dropout": float(cfg["activation_dropout"]),
        "feat_proj_dropout": float(cfg["dropout_input"]),
        "layerdrop": float(cfg["encoder_layerdrop"]),
        "layer_norm_eps": 1e-5,
    }


# --------------------------------------------------------------------------- weight names

def _rules(pairs: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile(pattern), target) for pattern, target in pairs]


_LAYER = r"^encoder\.layers\.(\d+)\."
_ENCODER_RULES = _rules(
    [
        (r"^encoder\.pos_conv\.0\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
        (r"^encoder\.pos_conv\.0\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
        (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv_embed.conv.bias"),
        (_LAYER + r"self_attn\.(k|v|q|out)_proj\.(weight|bias)$", r"encoder.layers.\1.attention.\2_proj.\3"),
        (_LAYER + r"self_attn_layer_norm\.(weight|bias)$", r"encoder.layers.\1.layer_norm.\2"),
        (_LAYER + r"fc1\.(weight|bias)$", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
        (_LAYER + r"fc2\.(weight|bias)$", r"encoder.layers.\1.feed_forward.output_dense.\2"),
        (_LAYER + r"final_layer_norm\.(weight|bias)$", r"encoder.layers.\1.final_layer_norm.\2"),
        (r"^encoder\.layer_norm\.(weight|bias)$", r"encoder.layer_norm.\1"),
    ]
)

_CONV = r"^feature_extractor\.conv_layers\.(\d+)\."
_FRONTEND_RULES = _rules(
    [
        (_CONV + r"0\.(weight|bias)$", r"feature_extractor.conv_layers.\1.conv.\2"),
        # extractor_mode=default: Sequential(conv, dropout, GroupNorm, GELU) in the first block
        (_CONV + r"2\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
        # extractor_mode=layer_norm: Sequential(conv, dropout, Sequential(T, LayerNorm, T), GELU)
        (_CONV + r"2\.1\.(weight|bias)$", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
        (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
        (r"^post_extract_proj\.(weight|bias)$", r"feature_projection.projection.\1"),
    ]
)


def rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, target in rules:
        if pattern.match(key):
            return pattern.sub(target, key)
    return None


def encoder_key(key: str) -> str | None:
    """A fairseq ``TransformerEncoder`` weight name -> transformers' ``Wav2Vec2Encoder`` name."""
    return rename(key, _ENCODER_RULES)


def map_wav2vec2_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq wav2vec 2.0 / HuBERT weights -> transformers ``Wav2Vec2Model``/``HubertModel`` names.

    Pre-training heads (quantizer, project_q, final_proj, label embeddings, mask_emb) are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = encoder_key(key) or rename(key, _FRONTEND_RULES)
        if new is not None:
            out[new] = value
    return out


def hf_legacy_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older transformers folders store the weight-normed positional conv as weight_g/weight_v."""
    out = {}
    for key, value in state.items():
        if key.endswith("pos_conv_embed.conv.weight_g"):
            key = key[: -len("weight_g")] + "parametrizations.weight.original0"
        elif key.endswith("pos_conv_embed.conv.weight_v"):
            key = key[: -len("weight_v")] + "parametrizations.weight.original1"
        out[key] = value
    return out
