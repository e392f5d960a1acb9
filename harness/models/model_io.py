"""Model artifacts: an upstream's weights as safetensors plus a JSON config naming its family.

Layout of a model folder (written by upstream, finetune and merge stages)::

    <dir>/model.safetensors   the upstream's state dict
    <dir>/upstream.json       {"family": plugin name, "config": UpstreamModel.config()}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from harness.core.errors import CheckpointError

if TYPE_CHECKING:
    from harness.core.interfaces import UpstreamModel
    from harness.core.registry import PluginManager

WEIGHTS = "model.safetensors"
CONFIG = "upstream.json"


def save_model(model: UpstreamModel, out_dir: Path) -> None:
    """Write ``model`` into ``out_dir`` (contiguous CPU copies; shared tensors are cloned)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS))
    (out_dir / CONFIG).write_text(
        json.dumps({"family": model.family, "config": model.config()}, indent=2, sort_keys=True) + "\n"
    )


def read_model_config(model_dir: Path) -> dict:
    path = Path(model_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{model_dir} holds no {CONFIG}; it is not a model folder written by the harness.")
    return json.loads(path.read_text())


def load_model(model_dir: Path, plugins: PluginManager) -> UpstreamModel:
    """Rebuild the model saved in ``model_dir`` through its family's plugin and load its weights."""
    model_dir = Path(model_dir)
    meta = read_model_config(model_dir)
    plugin = plugins.create("upstream", meta["family"])
    model = plugin.from_config(meta["config"])
    state = load_file(str(model_dir / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{model_dir / WEIGHTS} does not fit a {meta['family']} model: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    model.eval()
    return model


def model_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
