"""Model artifacts: an upstream's weights as safetensors plus a JSON config naming its family.

Layout of a model folder (written by upstream, finetune and merge stages)::

    <dir>/model.safetensors   the upstream's state dict
    <dir>/upstream.json       {"family": plugin name, "config": UpstreamModel.config()}
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from harness.core.errors import CheckpointError, HarnessError

if TYPE_CHECKING:
    from harness.core.model_types import UpstreamModel
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
    if not (model_dir / WEIGHTS).is_file():
        raise CheckpointError(f"{model_dir} holds {CONFIG} but no {WEIGHTS}; give a complete model folder (a run "
                              "writes a model folder you delete again when its recipe runs).")
    state = load_file(str(model_dir / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in model.optional_weights]
    if missing or unexpected:
        raise CheckpointError(
            f"{model_dir / WEIGHTS} does not fit a {meta['family']} model: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    model.eval()
    return model


#: the export format every model has: the harness's own model folder (what ``upstream: {checkpoint: DIR}`` loads)
HARNESS_FORMAT = "harness"


def export_formats(family: str, plugins: PluginManager) -> tuple[str, ...]:
    """The formats a model of ``family`` exports to: its family's own first, then the harness folder."""
    return (*plugins.get("upstream", family).cls.export_formats, HARNESS_FORMAT)


def export_model(model_dir: Path, out_dir: Path, plugins: PluginManager, fmt: str | None = None) -> str:
    """Write the model saved in ``model_dir`` into ``out_dir`` in ``fmt`` (default: its family's own
    format, else the harness folder); returns the format written."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    family = read_model_config(model_dir)["family"]
    formats = export_formats(family, plugins)
    fmt = fmt or formats[0]
    if fmt not in formats:
        raise HarnessError(f"a {family} model exports as {' or '.join(formats)}, not {fmt!r}; "
                           f"pass --format {formats[0]}.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise HarnessError(f"{out_dir} already exists and is not empty; choose another --out.")
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == HARNESS_FORMAT:
        for name in (WEIGHTS, CONFIG):
            shutil.copyfile(model_dir / name, out_dir / name)
    else:
        plugins.create("upstream", family).export(load_model(model_dir, plugins), fmt, out_dir)
    return fmt


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def parse_device(request: str | torch.device, where: str = "--device") -> str:
    """``request`` as one of ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (checks the spelling only, not the machine)."""
    text = str(request).strip().lower()
    if text in ("auto", "cpu") or _CUDA.match(text):
        return text
    raise HarnessError(f"{where} {str(request)!r} is not a device; use {DEVICE_CHOICES}.")


def model_device(request: str | torch.device = "auto", where: str = "--device") -> torch.device:
    """The device that stages on the accelerator run on (``ctx.device``), from a ``harness run --device`` value.

    ``auto`` is the GPU when torch sees one, else the CPU; ``cuda`` is the current GPU; ``cuda:N`` GPU N of
    those visible here. A CUDA device is always returned with its index. A bad value or a GPU that is not
    there raises a HarnessError naming ``where``.
    """
    text = parse_device(request, where)
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise HarnessError(f"{where} {text} asks for a CUDA GPU, but torch sees none on {socket.gethostname()}; "
                           "use --device cpu or auto.")
    index = _CUDA.match(text).group(1) if text != "auto" else None  # type: ignore[union-attr]
    if index is None:
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_initialized() else 0)
    count = torch.cuda.device_count()
    if int(index) >= count:
        seen = "only cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise HarnessError(f"{where} {text} asks for GPU {index}, but torch sees {seen} on {socket.gethostname()}; "
                           "pick one of those or use auto.")
    return torch.device("cuda", int(index))
