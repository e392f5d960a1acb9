"""The streaming merge engine: (θ0, [θft...], a merge plugin) -> θ over safetensors files.

Used by the merge stage and by ``harness merge``. Tensors are read one name at a time through
safetensors' lazy handles; memory stays near one model (the output being built) plus the tensors
of the name at hand. Low-precision tensors are merged in float32 and stored in θ0's dtype.

Not merged, copied from θ0 (and reported):

- tensors the plugin declines (:meth:`MergePlugin.merges`; by default every non-floating tensor,
  i.e. integer buffers such as step counters);
- pre-training-only parameters that no downstream uses and fine-tuning does not train: HuBERT's
  ``final_proj`` and ``label_embs`` (codebook), wav2vec 2.0's ``quantizer`` / ``project_q``, and the
  learned mask embeddings ``masked_spec_embed`` / ``mask_emb`` (:data:`PRETRAINING_ONLY`).

Paths may be ``.safetensors`` files, harness model folders (``model.safetensors`` +
``upstream.json``) or transformers folders with one ``model.safetensors`` of the bare model's names
(``save_pretrained`` of ``HubertModel``/``Wav2Vec2Model``, or an export); when the output is a folder,
θ0's ``upstream.json`` or ``config.json`` and ``preprocessor_config.json`` are copied next to it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from harness.core.errors import CheckpointError
from harness.core.interfaces import MergePlugin
from harness.core.plugin import P
from harness.models.model_io import CONFIG, WEIGHTS

log = logging.getLogger("harness.merging.engine")

#: name fragments of pre-training-only parameters, copied from θ0 rather than merged
PRETRAINING_ONLY = ("final_proj", "label_embs", "quantizer", "project_q", "masked_spec_embed", "mask_emb")


#: the configuration files of a transformers folder, copied with a base that is one
HF_CONFIGS = ("config.json", "preprocessor_config.json")


@dataclass
class MergeReport:
    merged: int = 0
    copied: list[str] = field(default_factory=list)
    out_path: Path | None = None


def weights_path(path: Path | str, role: str) -> Path:
    """The safetensors file behind ``path`` (a file, or a model folder holding ``model.safetensors``)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{role} {path} does not exist; give a .safetensors file or a harness model folder.")
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{role} {path} is not a .safetensors file; convert it first (e.g. load it as an upstream and save it)."
        )
    return path


def is_pretraining_only(name: str) -> bool:
    return any(part in name for part in PRETRAINING_ONLY)


class TensorView:
    """A safetensors handle restricted to the names that are merged, read as float32: the
    :class:`~harness.core.interfaces.TensorSource` handed to ``plugin.prepare``."""

    def __init__(self, handle: Any, names: Iterable[str]):
        self._handle = handle
        self._names = list(names)

    def keys(self) -> list[str]:
        return list(self._names)

    def get_tensor(self, name: str) -> torch.Tensor:
        return self._handle.get_tensor(name).float()


def _check_compatible(base: Any, others: list[Any], paths: list[Path], base_path: Path) -> None:
    """Every model has the base's tensors of the same shapes; pre-training-only tensors, which are copied
    from the base, may be absent from the fine-tuned models (a transformers folder keeps
    ``masked_spec_embed``, an older harness model does not)."""
    names = {n for n in base.keys() if not is_pretraining_only(n)}
    for handle, path in zip(others, paths, strict=True):
        theirs = {n for n in handle.keys() if not is_pretraining_only(n)}
        if theirs != names:
            missing, extra = sorted(names - theirs)[:3], sorted(theirs - names)[:3]
            raise CheckpointError(
                f"{path} does not have the tensors of the base model {base_path} (missing {missing}, extra "
                f"{extra}); merge only models fine-tuned from the same pre-trained model."
            )
        for name in names:
            a, b = base.get_slice(name).get_shape(), handle.get_slice(name).get_shape()
            if a != b:
                raise CheckpointError(
                    f"tensor {name} has shape {b} in {path} but {a} in the base model {base_path}; "
                    "merge only models of the same architecture."
                )


def merge_files(
    plugin: MergePlugin[P],
    params: P,
    base_path: Path | str,
    model_paths: list[Path | str],
    out_path: Path | str,
) -> MergeReport:
    """Merge ``model_paths`` (θft...) with ``base_path`` (θ0) into ``out_path`` (a file or a folder).

    ``plugin.prepare`` runs once over the merged tensors; what it returns is handed to every
    ``plugin.merge_tensor`` call.
    """
    if not model_paths:
        raise CheckpointError("a merge needs at least one fine-tuned model; pass one or more with --models.")
    base_file = weights_path(base_path, "base model")
    files = [weights_path(p, "model") for p in model_paths]
    out_path = Path(out_path)
    to_folder = out_path.suffix != ".safetensors"
    out_file = out_path / WEIGHTS if to_folder else out_path
    out_file.parent.mkdir(parents=True, exist_ok=True)
    report = MergeReport(out_path=out_file)
    out: dict[str, torch.Tensor] = {}
    with ExitStack() as stack:
        base = stack.enter_context(safe_open(str(base_file), framework="pt"))
        tuned = [stack.enter_context(safe_open(str(f), framework="pt")) for f in files]
        _check_compatible(base, tuned, files, base_file)
        names = sorted(base.keys())
        merged_names = []
        for name in names:
            t = base.get_tensor(name)
            if plugin.merges(name, t) and not is_pretraining_only(name):
                merged_names.append(name)
            else:
                report.copied.append(name)
        state = plugin.prepare(TensorView(base, merged_names), [TensorView(h, merged_names) for h in tuned], params)
        merged_set = set(merged_names)
        for name in names:
            theta0 = base.get_tensor(name)
            if name not in merged_set:
                out[name] = theta0.contiguous()
                continue
            finetuned = [h.get_tensor(name).float() for h in tuned]
            result = plugin.merge_tensor(name, theta0.float(), finetuned, params, state)
            out[name] = result.to(theta0.dtype).contiguous()
            report.merged += 1
        metadata = base.metadata() or {}
    tmp = out_file.with_name(out_file.name + ".tmp")
    save_file(out, str(tmp), metadata={**metadata, "merge": plugin.name})
    os.replace(tmp, out_file)
    if to_folder and Path(base_path).is_dir():
        # the base's config travels with the weights: a harness folder's, or a transformers folder's
        for name in (CONFIG, *HF_CONFIGS):
            if (Path(base_path) / name).is_file():
                shutil.copyfile(Path(base_path) / name, out_path / name)
    if report.copied:
        shown = ", ".join(report.copied[:8]) + (" ..." if len(report.copied) > 8 else "")
        log.info("copied %d tensor(s) from the base model unmerged: %s", len(report.copied), shown)
    return report

