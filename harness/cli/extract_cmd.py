"""`harness extract [--upstream NAME] (--checkpoint PATH | --preset NAME) --audio-dir DIR --layer (N|all)
--out DIR`: hidden states of an upstream for every audio file under a folder, one ``.npy`` each.

Each output is named after its audio file's stem: ``[T, D]`` float32 for one layer, ``[L, T, D]``
for ``all`` (L = the model's hidden states: the input of each transformer layer and the final
output). Audio is read with :mod:`harness.data.audio` (any soundfile format, mixed to mono, resampled
to 16 kHz); every file's header is checked before anything runs, and bad files are reported
together. The model runs on length-sorted dynamic batches (:mod:`harness.models.inference`).

Each file is one forward pass, whose attention grows with the square of its length, so files longer
than :data:`MAX_FILE_SECONDS` are refused before the model is built: cut them into segments first.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from harness.core.errors import HarnessError
from harness.core.hub import missing_checkpoint
from harness.core.outdir import make_output_dir
from harness.core.params import parse_key_values, validate_params
from harness.core.registry import PluginManager, default_manager
from harness.data import audio
from harness.models.inference import batched_forward, effective_precision, length_sorted_batches
from harness.models.model_io import model_device

log = logging.getLogger("harness.extract")

#: The longest audio file extracted in one piece (5 minutes; SUPERB's utterances last under 35 s).
MAX_FILE_SECONDS = 300.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "extract",
        help="write an upstream's hidden states for every audio file of a folder (one .npy each)",
        description="Example: harness extract --upstream hubert --checkpoint hubert_base_ls960.pt "
        "--audio-dir wavs/ --layer all --out feats/",
    )
    parser.add_argument("--upstream", help="upstream plugin name (see `harness plugins`); default: read from the "
                                           "checkpoint folder's config.json (model_type) or upstream.json")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, help="fairseq .pt, transformers folder or harness model folder")
    source.add_argument("--preset", help="a named architecture, randomly initialised from --seed (e.g. tiny, base)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="other upstream parameter (repeatable)")
    parser.add_argument("--audio-dir", type=Path, required=True, help="folder searched recursively for audio files")
    parser.add_argument(
        "--layer", default="all", help="hidden state index (0 = input of the first layer, -1 = last) or all"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the .npy files")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="padded audio per batch (default 60)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed for presets (default 0)")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                        help="CUDA: fp32 (default, s3prl's), tf32 (fp32 on TF32 tensor cores) or bf16 (autocast); "
                             "the CPU extracts in fp32")
    parser.set_defaults(func=run)


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively), by any extension soundfile reads, sorted."""
    if not folder.is_dir():
        raise HarnessError(f"--audio-dir {folder} is not a folder; give the folder that holds the audio files.")
    extensions = {f".{ext.lower()}" for ext in sf.available_formats()} | {".mp3", ".opus"}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise HarnessError(f"--audio-dir {folder} holds no audio files (wav, flac, ogg, ...); check the folder.")
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise HarnessError(
                f"{seen[path.stem]} and {path} share the stem {path.stem!r}, so their outputs would collide; "
                "extract the two folders separately."
            )
        seen[path.stem] = path
    return files


def parse_layer(text: str, num_hidden_states: int, what: str) -> int | None:
    """``all`` -> None; an index (negative counts from the end) checked against the model."""
    if text == "all":
        return None
    try:
        index = int(text)
    except ValueError:
        raise HarnessError(
            f"--layer {text!r} is neither an integer nor 'all'; write e.g. --layer 6 or --layer all."
        ) from None
    if not -num_hidden_states <= index < num_hidden_states:
        raise HarnessError(
            f"--layer {index} is out of range: {what} has {num_hidden_states} hidden states "
            f"(0..{num_hidden_states - 1}, or negative from the end); pick one of those or all."
        )
    return index % num_hidden_states


class _LazyAudio(Sequence):
    """Audio files read (and checked) when their batch runs."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        return audio.load(self.paths[i])



def family_of(checkpoint: Path | None, plugins: PluginManager) -> str:
    """The upstream plugin of a checkpoint folder: ``upstream.json``'s family, or the plugin whose
    ``hf_model_type`` is ``config.json``'s ``model_type``."""
    if checkpoint is None:
        raise HarnessError("--upstream is needed with --preset; name the upstream plugin (see `harness plugins`).")
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for name, key in (("upstream.json", "family"), ("config.json", "model_type")):
        try:
            value = json.loads((folder / name).read_text()).get(key)
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if key == "family" and value:
            return str(value)
        found = [n for n in plugins.names("upstream")
                 if getattr(plugins.get("upstream", n).cls, "hf_model_type", None) == value]
        if found:
            return found[0]
        raise HarnessError(f"{folder / name} names model_type {value!r}, which no installed upstream reads; "
                           "pass --upstream.")
    raise HarnessError(f"cannot tell the family of {checkpoint} (no config.json or upstream.json next to it); "
                       "pass --upstream (see `harness plugins`).")


def run(args: argparse.Namespace) -> int:
    plugins = default_manager()
    if args.checkpoint is not None and not args.checkpoint.exists():
        raise HarnessError(missing_checkpoint(args.checkpoint, "--checkpoint"))
    if args.upstream is None:
        args.upstream = family_of(args.checkpoint, plugins)
    info = plugins.get("upstream", args.upstream)
    values = parse_key_values(args.param)
    if args.checkpoint is not None:
        values["checkpoint"] = args.checkpoint
    if args.preset is not None:
        values["preset"] = args.preset
    params = validate_params(info.cls.Params, values, where=f"--upstream {args.upstream}")
    if args.max_seconds <= 0:
        raise HarnessError(f"--max-seconds must be positive (got {args.max_seconds}).")
    files = audio_files(args.audio_dir)
    device = model_device(args.device)
    report = audio.check_files(files, level="header", what="audio files")
    lengths = [
        int(np.ceil(report.good[str(p)].frames * audio.SAMPLE_RATE / report.good[str(p)].sample_rate))
        for p in files
    ]
    too_long = [(p, n / audio.SAMPLE_RATE) for p, n in zip(files, lengths) if n > MAX_FILE_SECONDS * audio.SAMPLE_RATE]
    if too_long:
        path, seconds = too_long[0]
        raise HarnessError(
            f"{path} lasts {seconds:.0f} s, longer than the {MAX_FILE_SECONDS:.0f} s extract takes in one piece"
            f"{f' (and {len(too_long) - 1} more file(s))' if len(too_long) > 1 else ''}; cut it into segments of "
            f"at most {MAX_FILE_SECONDS:.0f} s (e.g. `sox in.wav out.wav trim 0 {MAX_FILE_SECONDS:.0f} : newfile "
            ": restart`) and extract those."
        )

    if args.out.exists() and not args.out.is_dir():
        make_output_dir(args.out, "--out")  # a file where the folder goes: one sentence, before the model is built
    model = info.cls().build(params, args.seed)  # type: ignore[attr-defined]
    layer = parse_layer(args.layer, model.num_hidden_states, f"{args.upstream} ({_source(args)})")
    model.to(device).eval()
    too_short = [str(p) for p, n in zip(files, lengths) if int(model.frame_lengths(torch.tensor([n]))[0]) == 0]
    if too_short:
        raise HarnessError(
            f"{len(too_short)} audio file(s) are too short for one {args.upstream} frame ({too_short[0]}"
            f"{' and others' if len(too_short) > 1 else ''}); remove them."
        )

    make_output_dir(args.out, "--out")
    batches = length_sorted_batches(lengths, args.max_seconds)
    layers = None if layer is None else [layer]
    written = 0
    frames = 0
    for i, hidden in batched_forward(
        model, _LazyAudio(files), batches=batches, layers=layers, device=device, precision=args.precision
    ):
        array = (torch.stack(hidden) if layer is None else hidden[0]).numpy().astype(np.float32, copy=False)
        np.save(args.out / f"{files[i].stem}.npy", array)
        written += 1
        frames += array.shape[-2]
    (args.out / "extract.json").write_text(
        json.dumps(
            {
                "upstream": args.upstream,
                "source": _source(args),
                "layer": args.layer,
                "precision": effective_precision(args.precision, device),
                "hidden_size": model.hidden_size,
                "num_hidden_states": model.num_hidden_states,
                "frame_shift": model.frame_shift,
                "files": written,
            },
            indent=2,
        )
        + "\n"
    )
    shape = "[T, D]" if layer is not None else f"[{model.num_hidden_states}, T, D]"
    print(
        f"wrote {written} files of {shape} (D = {model.hidden_size}, {frames} frames, "
        f"frame shift {model.frame_shift:g} s) to {args.out}"
    )
    return 0


def _source(args: argparse.Namespace) -> str:
    if args.checkpoint is not None:
        return str(args.checkpoint)
    return f"preset {args.preset}" if args.preset else "default"
